//! consent-analytics: a browser analytics client that sends each event only to the
//! destinations the visitor consented to, loads third-party tags lazily, and never loses an
//! accepted event.
//!
//! The deciding logic (consent, routing, load states, retries, circuit breaker, dead letters,
//! outbox, batching) is plain Rust over the traits in [`ports`] and is tested natively. The
//! browser adapters (`web`) and the JavaScript API (`api`) exist only on `wasm32`.
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
pub mod api;
pub mod breaker;
pub mod consent;
pub mod dead_letter;
pub mod error;
pub mod event;
pub mod manager;
pub mod outbox;
pub mod ports;
pub mod retry;
pub mod script;
pub mod scripts_cache;
pub mod stored;
#[cfg(target_arch = "wasm32")]
pub mod types;
pub mod uuid;
pub mod vendor_map;
#[cfg(target_arch = "wasm32")]
pub mod web;
