//! Browser implementations of the ports: `Date.now()`, `crypto.getRandomValues` and the
//! console (Web Storage is in `storage`).

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use super::js;

use crate::ports::{Clock, Log, Rng};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;
}

/// `globalThis[name]`, or `undefined` (also when the getter throws).
pub fn global_get(name: &str) -> JsValue {
    js::op(
        js::ops::GLOBAL,
        &JsValue::from_str(name),
        &JsValue::UNDEFINED,
    )
    .unwrap_or(JsValue::UNDEFINED)
}

/// Milliseconds since the epoch from `Date.now()`.
pub struct WebClock;

impl Clock for WebClock {
    fn now_ms(&self) -> u64 {
        now()
    }
}

/// The current time in ms.
pub fn now() -> u64 {
    date_now() as u64
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    /// The time now as an ISO-8601 string (`new Date().toISOString()`), as events and batches
    /// carry it.
    #[wasm_bindgen(js_name = isoNow)]
    pub fn iso_now() -> String;
}

/// Random numbers from `crypto.getRandomValues`, fetched 64 words at a time (falls back to
/// `Math.random` where `crypto` is missing): `random32` in host.js.
#[derive(Default)]
pub struct WebRng(());

impl Rng for WebRng {
    fn next_u32(&mut self) -> u32 {
        random32()
    }
}

/// Page-wide state in a `static`. The module runs on the page's one thread (the crate is not
/// built with wasm atomics), so a `RefCell` shared this way is never touched concurrently.
pub struct Local<T>(RefCell<T>);

// SAFETY: wasm32 without the atomics feature has a single thread; nothing can race.
unsafe impl<T> Sync for Local<T> {}

impl<T> Local<T> {
    /// A cell holding `v`.
    pub const fn new(v: T) -> Self {
        Local(RefCell::new(v))
    }

    /// Runs `f` with the cell.
    pub fn with<R>(&self, f: impl FnOnce(&RefCell<T>) -> R) -> R {
        f(&self.0)
    }
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = resolveUrl)]
    fn resolve_url_parts(url: &str) -> Option<js_sys::Array>;
    #[wasm_bindgen(js_name = random32)]
    fn random32() -> u32;
    /// A new random (version 4) UUID, lowercase and hyphenated: `crypto.randomUUID` where the
    /// page has it (secure contexts), else one built from `random32` (`uuid` in host.js).
    pub fn uuid() -> String;
    /// The fallback of [`uuid`]: a version-4 UUID built from `random32` words.
    #[wasm_bindgen(js_name = uuidFromWords)]
    pub fn uuid_from_words() -> String;
}

/// `url` resolved against the document's base URL (as `fetch` and script `src` resolve it): its
/// href and protocol, and the page's origin; `None` when it is not a valid URL.
pub fn resolve_url(url: &str) -> Option<(String, String, String)> {
    let a = resolve_url_parts(url)?;
    let part = |i| a.get(i).as_string().unwrap_or_default();
    Some((part(0), part(1), part(2)))
}

/// The console, with the `[consent-analytics]` prefix; debug lines only with `debug: true`.
pub struct ConsoleLog {
    /// Whether debug lines are printed.
    pub debug: bool,
}

const PREFIX: &str = "[consent-analytics] ";

impl Log for ConsoleLog {
    fn warn(&self, msg: &str) {
        say(js::ops::LOG + 1, msg);
    }
    fn debug(&self, msg: &str) {
        if self.debug {
            say(js::ops::LOG, msg);
        }
    }
}

/// Logs an error with the product prefix.
pub fn log_error(msg: &str) {
    say(js::ops::LOG + 2, msg);
}

/// Prints `msg` with the product prefix through `jsOp` operation `op` (console.log, warn, error).
fn say(op: u8, msg: &str) {
    let _ = js::op(
        op,
        &JsValue::from_str(&[PREFIX, msg].concat()),
        &JsValue::UNDEFINED,
    );
}

/// `navigator[name]`, or `undefined`.
pub fn navigator_get(name: &str) -> JsValue {
    js::get(&global_get("navigator"), name)
}

/// Whether the browser reports being online (`navigator.onLine`, true when unknown).
pub fn is_online() -> bool {
    navigator_get("onLine").as_bool().unwrap_or(true)
}

/// A JavaScript error's message, or the value as a string (empty when even that throws).
pub fn error_message(e: &JsValue) -> String {
    match js::op(js::ops::MESSAGE, e, &JsValue::UNDEFINED) {
        Ok(m) => m.as_string().unwrap_or_default(),
        Err(_) => String::new(),
    }
}
