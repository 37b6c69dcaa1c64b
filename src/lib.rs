//! consent-analytics: a browser analytics client that sends each event only to the
//! destinations the visitor consented to, loads third-party tags lazily, and never loses an
//! accepted event.
//!
//! The deciding logic (consent, routing, load states, retries, circuit breaker, dead letters,
//! outbox, batching) is plain Rust over the traits in [`ports`] and is tested natively. The
//! browser adapters (`web`) and the JavaScript API (`api`) exist only on `wasm32`.
#![deny(missing_docs)]
#![no_std]

extern crate alloc;
#[cfg(not(feature = "tiny"))]
extern crate std;

/// `String`, `Vec`, `Box`, `ToString` and `vec!` for every module (the crate is `no_std`).
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

#[cfg(all(feature = "tiny", target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: heap::Allocator<heap::WasmPages> = heap::Allocator::new(heap::WasmPages);

/// In the tiny build a panic (always a bug) traps without formatting its message.
#[cfg(all(feature = "tiny", target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(target_arch = "wasm32")]
pub mod api;
pub mod breaker;
pub mod consent;
pub mod dead_letter;
pub mod error;
pub mod event;
pub mod heap;
pub mod json;
pub mod manager;
pub mod outbox;
pub mod ports;
pub mod retry;
pub mod script;
pub mod scripts_cache;
#[cfg(target_arch = "wasm32")]
pub mod types;
pub mod uuid;
pub mod vendor_map;
#[cfg(target_arch = "wasm32")]
pub mod web;
