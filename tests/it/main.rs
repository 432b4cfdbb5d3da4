//! The one integration-test binary: every file here is a module (see ripgrep's tests/ layout). The tests that
//! need root start from `labkit::Lab` (or `labkit::skip_without_root`): without root they skip in one line, as
//! root they run.

mod cli;
mod coexist;
mod dns;
mod encryption;
mod facts_fixtures;
mod faults;
mod firewalld;
mod hostile;
mod inventory_corpus;
mod ipv6;
mod kernel;
mod lab;
mod labkit;
mod layering;
mod mesh;
mod mixed;
mod properties;
mod reach;
mod simulate;
mod sites;
mod snapshots;
mod transport;
mod util;
mod verify6;
