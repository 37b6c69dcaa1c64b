//! The browser layer: browser implementations of the ports, script injection, destination
//! instances and the driver that runs the manager's commands. A promise is awaited as a
//! `wasm_bindgen_futures::JsFuture` on a `spawn_local` task, a delay is a gloo-timers
//! `Timeout` ([`timers`]). It reaches the browser through js-sys and small JavaScript helpers (`destinations/vendors.js`)
//! that each catch what the browser or page values can throw.

pub mod config;
pub mod dest;
pub mod destinations;
pub mod engine;
pub mod event;
pub mod inject;
pub mod js;
pub mod lifecycle;
pub mod locks;
pub mod net;
pub mod platform;
pub mod registry;
pub mod remote;
pub mod results;
pub mod storage;
pub mod timers;
