//! The simulator's parts (included by tests/sim.rs with `#[path]`).
#![allow(dead_code)]

#[path = "checks.rs"]
pub mod checks;
#[path = "net.rs"]
pub mod net;
#[path = "rng.rs"]
pub mod rng;
#[path = "servers.rs"]
pub mod servers;
#[path = "shapes.rs"]
pub mod shapes;
#[path = "world.rs"]
pub mod world;
