//! The `vxmesh` binary: parses arguments, runs the command, prints, and picks the exit code.

mod cli;

/// mimalloc, not the system's: at 1,000 hosts an `up` makes tens of millions of small strings and vectors (every
/// tunnel's words, steps and descriptions), and glibc's malloc and free were a third of the laptop's CPU
/// (docs/scaling.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
