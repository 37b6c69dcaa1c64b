//! Helpers shared by the browser tests (each test file is its own crate and uses part of them).
#![allow(dead_code)]

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export async function until(fn, ms) {
  const end = Date.now() + (ms || 3000);
  while (Date.now() < end) { if (fn()) return true; await new Promise((r) => setTimeout(r, 10)); }
  return false;
}
"#)]
extern "C" {
    fn until(f: &Function, ms: u32) -> js_sys::Promise;
}

/// A JavaScript value from JSON text.
pub fn obj(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

/// `o[k]`.
pub fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

/// Whether `f` became true within 3 s (asked every 10 ms).
pub async fn wait(f: impl Fn() -> bool + 'static) -> bool {
    let cb = Closure::<dyn Fn() -> bool>::new(f);
    let r = JsFuture::from(until(cb.as_ref().unchecked_ref(), 3000))
        .await
        .unwrap();
    r.as_bool().unwrap()
}
