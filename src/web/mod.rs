//! The browser layer: web-sys implementations of the ports, script injection, destination
//! instances and the driver that runs the manager's commands.

#[allow(unused_imports)]
use crate::prelude::*;

pub mod config;
pub mod dest;
pub mod destinations;
pub mod engine;
pub mod event;
pub mod inject;
pub mod js;
pub mod platform;
pub mod registry;
pub mod remote;
