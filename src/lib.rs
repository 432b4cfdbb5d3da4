//! vxmesh: connect docker hosts with a full mesh of VXLAN tunnels over Open vSwitch.

pub mod error;
pub mod inventory;
pub mod ipam;
pub mod names;
