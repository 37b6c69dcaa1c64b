//! The browser layer: browser implementations of the ports, script injection, destination
//! instances and the driver that runs the manager's commands. Waiting on a promise is a
//! continuation kept in `settle` (no Rust async). It reaches the browser through
//! js-sys and small JavaScript helpers (`host.js`, `destinations/vendors.js`,
//! `destinations/relay.js`) that each catch what the browser or page values can throw.

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
pub mod settle;
