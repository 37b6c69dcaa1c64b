//! Continuations for JavaScript promises and timers, instead of Rust futures and an executor:
//! [`then`] keeps what to do with a promise's outcome under a token, and the `settleWhen`
//! helper of `host.js` hands the outcome with that token to one callback for the whole page,
//! which takes the continuation out of the table and runs it.

#[allow(unused_imports)]
use crate::prelude::*;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::platform::Local;

/// What to do with an outcome: `Ok(value)`, or `Err(what it rejected with)`.
type Then = Box<dyn FnOnce(Result<JsValue, JsValue>)>;

/// The continuations waiting, with their tokens, and the last token given.
static TABLE: Local<(Vec<(u32, Then)>, u32)> = Local::new((Vec::new(), 0));

/// Keeps `k` under a new token (never reused, so a stale timer finds nothing).
fn add(k: Then) -> u32 {
    TABLE.with(|t| {
        let (waiting, last) = &mut *t.borrow_mut();
        if *last == 0 {
            // The first continuation of the page: hand `settled` to host.js, once.
            // (The same closure type as the crate's other callbacks: one shim for all.)
            set_settle(&Closure::<dyn FnMut(JsValue)>::new(settled).into_js_value());
        }
        *last = last.wrapping_add(1);
        waiting.push((*last, k));
        *last
    })
}

/// Takes the continuation kept under `token` out of the table (none when it was cancelled or
/// already ran).
fn take(token: u32) -> Option<Then> {
    TABLE.with(|t| {
        let waiting = &mut t.borrow_mut().0;
        for i in 0..waiting.len() {
            if waiting[i].0 == token {
                return Some(waiting.swap_remove(i).1);
            }
        }
        None
    })
}

/// The page's one callback, with `[token, ok, v]`: the promise or timer of `token` settled
/// (`ok` true: fulfilled with `v`, false: rejected with `v`).
fn settled(a: JsValue) {
    let a: &js_sys::Array = a.unchecked_ref();
    if let Some(k) = take(a.get(0).as_f64().unwrap_or(0.0) as u32) {
        let v = a.get(2);
        k(if a.get(1).is_truthy() { Ok(v) } else { Err(v) });
    }
}

/// Runs `k` with the outcome of `p` once it settles (always from a promise job, never now).
pub fn then(p: &Promise, k: impl FnOnce(Result<JsValue, JsValue>) + 'static) {
    settle_when(p, add(Box::new(k)));
}

/// Runs `k` from a microtask, after what runs now (`k` gets `Ok(undefined)`: continuations
/// take an outcome, so each needs no wrapper of its own).
pub fn soon(k: impl FnOnce(Result<JsValue, JsValue>) + 'static) {
    // `settleWhen` treats a value that is not a promise as one already fulfilled.
    then(JsValue::UNDEFINED.unchecked_ref(), k);
}

/// Runs `k` after `ms` milliseconds unless [`cancel`]led; returns the `setTimeout` handle and
/// the token to cancel it with (`k` gets an outcome to ignore).
pub fn after(ms: u64, k: impl FnOnce(Result<JsValue, JsValue>) + 'static) -> (i32, u32) {
    let token = add(Box::new(k));
    (settle_after(ms.min(i32::MAX as u64) as i32, token), token)
}

/// Cancels an [`after`]: clears its timer and drops its continuation.
pub fn cancel((handle, token): (i32, u32)) {
    clear_timeout(handle);
    drop(take(token));
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = setSettle)]
    fn set_settle(f: &JsValue);
    #[wasm_bindgen(js_name = settleWhen)]
    fn settle_when(p: &Promise, token: u32);
    #[wasm_bindgen(js_name = settleAfter)]
    fn settle_after(ms: i32, token: u32) -> i32;
}

#[wasm_bindgen]
extern "C" {
    /// `clearTimeout(handle)`.
    #[wasm_bindgen(js_name = clearTimeout)]
    pub fn clear_timeout(handle: i32);
}
