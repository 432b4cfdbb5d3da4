//! The one integration-test binary: every file here is a module (see ripgrep's tests/ layout).

mod cli;
mod encryption;
mod facts_fixtures;
mod faults;
mod hostile;
mod inventory_corpus;
mod kernel;
mod lab;
mod labkit;
mod layering;
mod mesh;
mod properties;
mod reach;
mod simulate;
mod snapshots;
mod transport;
mod util;
