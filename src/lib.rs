//! vxmesh: connect docker hosts with a full mesh of VXLAN tunnels, from one binary on the admin's laptop.
//!
//! Layers, each using only those above it in this list: `error`, `model` (inventory, address plan, names),
//! `shell` (commands as data), `plan`, `facts`, `components`, `converge`, `remote`, `verify`, `commands`,
//! `report`; `lab` stands apart (tests/it/layering.rs keeps it so).

pub mod commands;
pub mod components;
pub mod converge;
pub mod error;
pub mod facts;
pub mod lab;
pub mod model;
pub mod plan;
pub mod remote;
pub mod report;
pub mod shell;
pub mod verify;
