//! Small helpers for reading JavaScript objects with errors that name the field.

use js_sys::Object;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    // Page values may be proxies or have throwing getters: the operation is caught (an `Err`
    // here), so a JavaScript exception never unwinds through the wasm.
    #[wasm_bindgen(catch, js_name = jsOp)]
    fn js_op(op: u8, a: &JsValue, b: &JsValue, c: &JsValue) -> Result<JsValue, JsValue>;
}

/// The operations of `jsOp` in host.js, by number.
pub mod ops {
    /// `Reflect.get(a, b)`.
    pub const GET: u8 = 0;
    /// `Reflect.set(a, b, c)`.
    pub const SET: u8 = 1;
    /// `Object.getPrototypeOf(a)`.
    pub const PROTO: u8 = 2;
    /// `Object.keys(a)`.
    pub const KEYS: u8 = 3;
    /// `Object.entries(a)`.
    pub const ENTRIES: u8 = 4;
    /// `Object.assign(a, b)`.
    pub const ASSIGN: u8 = 5;
    /// `Array.from(a)`.
    pub const ITEMS: u8 = 6;
    /// `String(a)`.
    pub const STRING: u8 = 7;
    /// `new Error(a)`.
    pub const ERROR: u8 = 8;
    /// `new TypeError(a)`.
    pub const TYPE_ERROR: u8 = 9;
    /// `console.log(a)`; `LOG + 1` is `console.warn`, `LOG + 2` `console.error`.
    pub const LOG: u8 = 10;
    /// `JSON.stringify(a)`.
    pub const STRINGIFY: u8 = 13;
    /// `Reflect.get(globalThis, a)`.
    pub const GLOBAL: u8 = 14;
    /// A thrown value's message: `a` when a string, else `a.message` when a string (a throwing
    /// getter is skipped), else `String(a)`.
    pub const MESSAGE: u8 = 15;
}

/// Runs operation `op` (see [`ops`]) of `jsOp` in host.js on `a` and `b`: one import for the
/// reflective, error and console operations the crate uses instead of one wasm-bindgen
/// wrapper each.
pub fn op(op: u8, a: &JsValue, b: &JsValue) -> Result<JsValue, JsValue> {
    js_op(op, a, b, &JsValue::UNDEFINED)
}

/// Operation `code` on `v` alone.
fn op1(code: u8, v: &JsValue) -> Result<JsValue, JsValue> {
    op(code, v, &JsValue::UNDEFINED)
}

/// `obj[key]`, or `undefined` when absent, when `obj` is not an object or when the getter throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    // Reflect.get throws on a non-object; an exception is far slower than this check.
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    op(ops::GET, obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sets `obj[key] = value` (ignoring failures on frozen objects).
pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = js_op(ops::SET, obj, &JsValue::from_str(key), value);
}

fn get_proto(v: &JsValue) -> Result<JsValue, JsValue> {
    op1(ops::PROTO, v)
}

/// Operation `code` on `a` and `b`; a throw fails with `<path>: value could not be read: <why>`
/// (without `<path>: ` when `path` is empty).
fn read_op(code: u8, a: &JsValue, b: &JsValue, path: &str) -> Result<JsValue, String> {
    match op(code, a, b) {
        Ok(r) => Ok(r),
        Err(e) => Err([
            path,
            if path.is_empty() { "" } else { ": " },
            "value could not be read: ",
            &super::platform::error_message(&e),
        ]
        .concat()),
    }
}

/// Operation `code` on `v` alone, as an array (keys, entries, items); see [`read_op`].
fn array_op(code: u8, v: &JsValue, path: &str) -> Result<js_sys::Array, String> {
    Ok(read_op(code, v, &JsValue::UNDEFINED, path)?.unchecked_into())
}

/// The own enumerable keys of `v` (an array of strings); fails with `<path>: <why>`.
pub fn keys_at(v: &JsValue, path: &str) -> Result<js_sys::Array, String> {
    array_op(ops::KEYS, v, path)
}

/// Item `i` of `a` as a string (a key from [`keys_at`] or [`entries`]; empty if not a string).
pub fn key(a: &js_sys::Array, i: u32) -> String {
    a.get(i).as_string().unwrap_or_default()
}

/// The own enumerable `[key, value]` pairs of `v`; fails with `<path>: <why>`.
pub fn entries(v: &JsValue, path: &str) -> Result<js_sys::Array, String> {
    array_op(ops::ENTRIES, v, path)
}

/// The items of an array-like `v` (copied first, so a proxy cannot throw mid-iteration); fails
/// with `<path>: <why>` (just `<why>` when `path` is empty).
pub fn items(v: &JsValue, path: &str) -> Result<js_sys::Array, String> {
    array_op(ops::ITEMS, v, path)
}

/// The items of the array `v` (see [`items`]); fails with `<path><not_array>` when `v` is not
/// an array, `<path>: <why>` when it cannot be read.
pub fn list(v: &JsValue, path: &str, not_array: &str) -> Result<js_sys::Array, String> {
    if !js_sys::Array::is_array(v) {
        return Err([path, not_array].concat());
    }
    items(v, path)
}

/// `<path>[<i>]`: where item `i` of the list at `path` sits, for error messages.
pub fn index(path: &str, i: u32) -> String {
    [path, "[", &i.to_string(), "]"].concat()
}

/// `Object.assign(target, source)`.
pub fn assign(target: &JsValue, source: &JsValue) -> Result<Object, String> {
    Ok(read_op(ops::ASSIGN, target, source, "")?.unchecked_into())
}

/// Whether `v` is a plain object (not null, not an array, prototype `Object.prototype` or null).
pub fn is_plain_object(v: &JsValue) -> bool {
    if !v.is_object() || js_sys::Array::is_array(v) {
        return false;
    }
    match get_proto(v) {
        Ok(p) if p.is_null() => true,
        Ok(p) => match get_proto(&p) {
            Ok(pp) => pp.is_null(),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Fails naming the first own key of `obj` not in `allowed`.
pub fn check_keys(obj: &Object, allowed: &[&str], path: &str) -> Result<(), String> {
    let keys = keys_at(obj, path)?;
    for i in 0..keys.length() {
        let k = key(&keys, i);
        if !allowed.contains(&k.as_str()) {
            return Err(["unknown option ", path, ".", &k].concat());
        }
    }
    Ok(())
}

/// A `TypeError` with `msg`.
pub fn type_error(msg: &str) -> JsValue {
    error_of(ops::TYPE_ERROR, msg)
}

/// An `Error` with `msg`.
pub fn error(msg: &str) -> JsValue {
    error_of(ops::ERROR, msg)
}

/// Operation `code` (an error constructor) on `msg`.
fn error_of(code: u8, msg: &str) -> JsValue {
    op1(code, &JsValue::from_str(msg)).unwrap_or_default()
}

/// `JSON.stringify(v)` (empty when it gives `undefined`); `Err` holds what a `toJSON` threw.
pub fn stringify(v: &JsValue) -> Result<String, JsValue> {
    Ok(op1(ops::STRINGIFY, v)?.as_string().unwrap_or_default())
}
