//! Reaching hosts: SSH (the [`crate::converge::Transport`] for real hosts), the parallel executor, Ctrl-C.

pub mod executor;
pub mod interrupt;
pub mod record;
pub mod ssh;
