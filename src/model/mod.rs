//! The model: the validated inventory, the address plan kept in the lock file, and the names of what vxmesh makes.

pub mod addr_text;
mod blocks;
pub mod files;
pub mod inventory;
pub mod ipam;
pub mod lock;
pub mod names;
pub mod paths;
