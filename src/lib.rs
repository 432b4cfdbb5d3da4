//! vxmesh: connect docker hosts with a full mesh of VXLAN tunnels over Open vSwitch.

pub mod boot;
pub mod diff;
pub mod docker_daemon;
pub mod error;
pub mod executor;
pub mod facts;
pub mod inventory;
pub mod ipam;
pub mod lab;
pub mod names;
pub mod plan;
pub mod render;
pub mod ssh;
pub mod verify;
