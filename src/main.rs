//! The `vxmesh` binary: parses arguments, runs the command, prints, and picks the exit code.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
