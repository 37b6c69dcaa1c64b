//! Browser implementations of the ports: `Date.now()`, `crypto.getRandomValues` and the
//! console (Web Storage is in `storage`); ids, the navigator and the global object.

use std::cell::RefCell;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{console, Crypto, Navigator};

use super::js;

use crate::ports::{Clock, Log, Rng};

/// `globalThis[name]`, or `undefined` (also when the getter throws).
pub fn global_get(name: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// What the page offers for ids and the online state, looked up once: the global object's
/// `crypto` (and whether it has `randomUUID`, which browsers give secure contexts only) and
/// `navigator`; `None` outside a browser window or worker.
struct Globals {
    crypto: Option<Crypto>,
    random_uuid: bool,
    navigator: Option<Navigator>,
}

thread_local! {
    static GLOBALS: Globals = {
        let crypto = global_get("crypto").dyn_into::<Crypto>().ok();
        let random_uuid = crypto.as_ref().is_some_and(|c| js::get(c, "randomUUID").is_function());
        let navigator = global_get("navigator").dyn_into::<Navigator>().ok();
        Globals { crypto, random_uuid, navigator }
    };
    /// Random words from one `getRandomValues` call, used from the back.
    static WORDS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
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
    js_sys::Date::now() as u64
}

/// The time now as an ISO-8601 string (`new Date().toISOString()`), as events and batches
/// carry it.
pub fn iso_now() -> String {
    js_sys::Date::new_0().to_iso_string().into()
}

/// A random 32-bit word from `crypto.getRandomValues`, fetched 64 words at a time
/// (`Math.random` where `crypto` is missing or refuses).
pub fn random32() -> u32 {
    WORDS.with_borrow_mut(|words| {
        if words.is_empty() {
            let mut bytes = [0u8; 256];
            let filled = GLOBALS.with(|g| {
                g.crypto
                    .as_ref()
                    .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok())
            });
            *words = if filled {
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                (0..64)
                    .map(|_| (js_sys::Math::random() * 4_294_967_296.0) as u32)
                    .collect()
            };
        }
        words.pop().unwrap_or_default()
    })
}

#[wasm_bindgen]
extern "C" {
    /// `crypto.randomUUID()` as the JavaScript string it is (web-sys's binding copies it into a
    /// Rust `String`; an event's messageId goes straight back into the event object).
    /// Caught: a page may replace it by one that throws.
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid_value() -> Result<JsValue, JsValue>;
}

/// A new random (version 4) UUID, lowercase and hyphenated: `crypto.randomUUID` where the page
/// has it (secure contexts), else [`uuid_from_words`].
pub fn uuid() -> String {
    native_uuid()
        .and_then(|v| v.as_string())
        .unwrap_or_else(uuid_from_words)
}

/// [`uuid`] as a JavaScript string, for an event object (`crypto.randomUUID`'s own string,
/// never copied into Rust and back).
pub fn uuid_value() -> JsValue {
    native_uuid().unwrap_or_else(|| JsValue::from_str(&uuid_from_words()))
}

/// `crypto.randomUUID()`, where the page has it and it does not throw.
fn native_uuid() -> Option<JsValue> {
    GLOBALS
        .with(|g| g.crypto.is_some() && g.random_uuid)
        .then(random_uuid_value)
        .and_then(Result::ok)
}

/// The fallback of [`uuid`]: a version-4 UUID whose random hex digits come from [`random32`].
pub fn uuid_from_words() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    "10000000-1000-4000-8000-100000000000"
        .bytes()
        .map(|c| {
            let r = random32() as u8;
            char::from(match c {
                // A random digit, but the version (4) and the variant (8 to b) are fixed.
                b'0' => HEX[usize::from(r & 15)],
                b'1' => HEX[usize::from(1 ^ (r & 15))],
                b'8' => HEX[usize::from(8 ^ (r & 3))],
                other => other,
            })
        })
        .collect()
}

/// Random numbers from `crypto.getRandomValues`, fetched 64 words at a time (falls back to
/// `Math.random` where `crypto` is missing): [`random32`].
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

/// `url` resolved against the document's base URL (as `fetch` and script `src` resolve it): its
/// href and protocol, and the page's origin; `None` when it is not a valid URL.
pub fn resolve_url(url: &str) -> Option<(String, String, String)> {
    let window = web_sys::window()?;
    let base = window.document()?.base_uri().ok().flatten()?;
    let u = web_sys::Url::new_with_base(url, &base).ok()?;
    let origin = window.location().origin().ok()?;
    Some((u.href(), u.protocol(), origin))
}

/// The console, with the `[consent-analytics]` prefix; debug lines only with `debug: true`.
pub struct ConsoleLog {
    /// Whether debug lines are printed.
    pub debug: bool,
}

const PREFIX: &str = "[consent-analytics] ";

impl Log for ConsoleLog {
    fn warn(&self, msg: &str) {
        console::warn_1(&prefixed(msg));
    }
    fn debug(&self, msg: &str) {
        if self.debug {
            console::log_1(&prefixed(msg));
        }
    }
}

/// Logs an error with the product prefix.
pub fn log_error(msg: &str) {
    console::error_1(&prefixed(msg));
}

/// `msg` with the product prefix, for the console.
fn prefixed(msg: &str) -> JsValue {
    JsValue::from_str(&[PREFIX, msg].concat())
}

/// `navigator[name]`, or `undefined` (for fields web-sys does not type, such as
/// `globalPrivacyControl`; also when the getter throws).
pub fn navigator_get(name: &str) -> JsValue {
    GLOBALS.with(|g| match &g.navigator {
        Some(n) => js::get(n, name),
        None => JsValue::UNDEFINED,
    })
}

/// The browser's `navigator`, when there is one.
pub fn navigator() -> Option<Navigator> {
    GLOBALS.with(|g| g.navigator.clone())
}

/// Whether the browser reports being online (`navigator.onLine`, true when unknown).
pub fn is_online() -> bool {
    GLOBALS.with(|g| g.navigator.as_ref().is_none_or(Navigator::on_line))
}

/// A JavaScript error's message: the value when it is a string, else its `message` when that
/// is a string (a throwing getter is skipped), else `String(e)` (empty when even that throws).
pub fn error_message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    if let Some(m) = js::get(e, "message").as_string() {
        return m;
    }
    js::to_js_string(e).unwrap_or_default()
}
