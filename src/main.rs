//! The `vxmesh` binary: parses arguments, runs the command, prints, and picks the exit code.

mod cli;
mod hosts;

fn main() {
    std::process::exit(cli::run());
}
