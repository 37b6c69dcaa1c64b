//! Browser implementations of the ports: `Date.now()`, `crypto.getRandomValues`,
//! `localStorage` / `sessionStorage` with every failure caught, and the console.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::js;

use crate::ports::{Clock, Log, Rng, Storage, StorageError};

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
    #[wasm_bindgen(js_name = storageOp)]
    fn storage_op(store: u8, op: u8, key: &str, value: &str) -> JsValue;
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

/// `localStorage` or `sessionStorage`, looked up on every call so that a storage that throws on
/// access (disabled, sandboxed, Safari private mode) only ever yields an error value; or the
/// page's memory stand-in for them.
pub struct WebStorage {
    /// 0 localStorage, 1 sessionStorage, 2 memory (see `storageOp` in host.js).
    store: u8,
}

impl WebStorage {
    /// `window.localStorage`.
    pub fn local() -> Self {
        WebStorage { store: 0 }
    }

    /// `window.sessionStorage`.
    pub fn session() -> Self {
        WebStorage { store: 1 }
    }

    /// This page's memory, standing in for a storage that failed (one map for the page; the
    /// keys carry their prefixes). It never fails.
    pub fn memory() -> Self {
        WebStorage { store: 2 }
    }

    /// Runs operation `op` (see `storageOp` in host.js): its result, or the kind of failure.
    fn op(&self, op: u8, key: &str, value: &str) -> Result<JsValue, StorageError> {
        let r = storage_op(self.store, op, key, value);
        match r.as_f64() {
            Some(2.0) => Err(StorageError::QuotaExceeded),
            Some(_) => Err(StorageError::Unavailable),
            None => Ok(r.unchecked_ref::<js_sys::Array>().get(0)),
        }
    }
}

impl Storage for WebStorage {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.op(0, key, "")?.as_string())
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StorageError> {
        self.op(1, key, value)?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StorageError> {
        self.op(2, key, "")?;
        Ok(())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let keys: js_sys::Array = self.op(3, prefix, "")?.unchecked_into();
        let mut out = Vec::new();
        for i in 0..keys.length() {
            out.push(keys.get(i).as_string().unwrap_or_default());
        }
        Ok(out)
    }
}

/// `localStorage` when it works; otherwise (disabled, blocked, sandboxed) a memory store for
/// this page, with one warning. Later failures (a full quota) are handled by each user.
pub fn local_storage_or_memory(log: &dyn Log) -> std::rc::Rc<dyn Storage> {
    let local = WebStorage::local();
    match local.get("consent-analytics:probe") {
        Err(StorageError::Unavailable) => {
            log.warn(
                "localStorage is unavailable: identity, dead letters and the relay outbox are kept in memory for this page",
            );
            std::rc::Rc::new(WebStorage::memory())
        }
        _ => std::rc::Rc::new(local),
    }
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

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    /// Adds `f` as a listener for `kind` on the document (`doc`) or the window.
    pub fn listen(doc: bool, kind: &str, f: &js_sys::Function);
}
