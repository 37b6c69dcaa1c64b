//! Small helpers for reading JavaScript objects with errors that name the field.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

// The reflective operations js-sys binds without `catch`. Page values may be proxies or have
// throwing getters: each of these is an `Err` here, so a JavaScript exception never unwinds
// through the wasm.
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    fn object_keys(v: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Object, js_name = entries)]
    fn object_entries(v: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Object, js_name = values)]
    fn object_values(v: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Object, js_name = fromEntries)]
    fn object_from_entries(entries: &Array) -> Result<Object, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Array, js_name = from)]
    fn array_from(v: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_name = String)]
    fn js_string(v: &JsValue) -> Result<js_sys::JsString, JsValue>;
}

/// `obj[key]`, or `undefined` when absent, when `obj` is not an object or when the getter throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    // Reflect.get throws on a non-object; an exception is far slower than this check.
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sets `obj[key] = value` (ignoring failures on frozen objects). For the crate's own keys:
/// a key that comes from page data is copied with [`merged`], which keeps `__proto__` an own
/// key.
pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

thread_local! {
    /// The crate's own field names as JavaScript strings, each made once: an event is built
    /// field by field on every `track()`, and a string made from Rust is decoded each time.
    static FIELDS: std::cell::RefCell<Vec<(&'static str, JsValue)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Field name `key` as a JavaScript string, made once per page.
pub fn field(key: &'static str) -> JsValue {
    FIELDS.with_borrow_mut(|fields| {
        if let Some((_, v)) = fields.iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        let v = JsValue::from_str(key);
        fields.push((key, v.clone()));
        v
    })
}

/// Sets the crate's own field `key` of `obj`, as [`set`] does, with the name from [`field`].
pub fn set_field(obj: &JsValue, key: &'static str, value: &JsValue) {
    let _ = Reflect::set(obj, &field(key), value);
}

/// `<path>: value could not be read: <why>` (without `<path>: ` when `path` is empty): the
/// message of a proxy trap or getter that threw while `path` was read.
pub fn unreadable(path: &str, thrown: &JsValue) -> String {
    [
        path,
        if path.is_empty() { "" } else { ": " },
        "value could not be read: ",
        &super::platform::error_message(thrown),
    ]
    .concat()
}

/// The own enumerable keys of `v` (an array of strings); fails with `<path>: <why>`.
pub fn keys_at(v: &JsValue, path: &str) -> Result<Array, String> {
    object_keys(v).map_err(|e| unreadable(path, &e))
}

/// Item `i` of `a` as a string (a key from [`keys_at`] or [`entries`]; empty if not a string).
pub fn key(a: &js_sys::Array, i: u32) -> String {
    a.get(i).as_string().unwrap_or_default()
}

/// The own enumerable `[key, value]` pairs of `v`; fails with `<path>: <why>`.
pub fn entries(v: &JsValue, path: &str) -> Result<Array, String> {
    object_entries(v).map_err(|e| unreadable(path, &e))
}

/// The own enumerable property values of `v`; fails with `<path>: <why>`.
pub fn values(v: &JsValue, path: &str) -> Result<Array, String> {
    object_values(v).map_err(|e| unreadable(path, &e))
}

/// The items of an array-like `v` (copied first, so a proxy cannot throw mid-iteration); fails
/// with `<path>: <why>` (just `<why>` when `path` is empty).
pub fn items(v: &JsValue, path: &str) -> Result<Array, String> {
    array_from(v).map_err(|e| unreadable(path, &e))
}

/// The items of the array `v` (see [`items`]); fails with `<path><not_array>` when `v` is not
/// an array, `<path>: <why>` when it cannot be read.
pub fn list(v: &JsValue, path: &str, not_array: &str) -> Result<Array, String> {
    if !Array::is_array(v) {
        return Err([path, not_array].concat());
    }
    items(v, path)
}

/// `<path>[<i>]`: where item `i` of the list at `path` sits, for error messages.
pub fn index(path: &str, i: u32) -> String {
    [path, "[", &i.to_string(), "]"].concat()
}

/// A new object with the own enumerable properties of each of `sources` in turn (a later one
/// wins; undefined and null are skipped), as object spread `{ ...a, ...b }` makes it. Each is
/// defined as an own data property (`Object.fromEntries`), never assigned: a `__proto__` key,
/// as `JSON.parse` of user input makes, stays an own key instead of becoming the prototype
/// (which `Object.assign` would do). Fails with `value could not be read: <why>`.
pub fn merged(sources: &[&JsValue]) -> Result<Object, String> {
    let mut all = Array::new();
    for s in sources {
        if !s.is_undefined() && !s.is_null() {
            all = all.concat(&entries(s, "")?);
        }
    }
    object_from_entries(&all).map_err(|e| unreadable("", &e))
}

/// `String(v)`, or `None` when that throws (a symbol's or an object's conversion can).
pub fn to_js_string(v: &JsValue) -> Option<String> {
    js_string(v).ok().and_then(|s| s.as_string())
}

/// Whether `v` is a plain object (not null, not an array, prototype `Object.prototype` or null).
pub fn is_plain_object(v: &JsValue) -> bool {
    if !v.is_object() || Array::is_array(v) {
        return false;
    }
    match Reflect::get_prototype_of(v) {
        Ok(p) if p.is_null() => true,
        Ok(p) => match Reflect::get_prototype_of(&p) {
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
    js_sys::TypeError::new(msg).into()
}

/// An `Error` with `msg`.
pub fn error(msg: &str) -> JsValue {
    js_sys::Error::new(msg).into()
}

/// `JSON.stringify(v)` (empty when it gives `undefined`); `Err` holds what a `toJSON` or a
/// getter threw.
pub fn stringify(v: &JsValue) -> Result<String, JsValue> {
    Ok(js_sys::JSON::stringify(v)?.as_string().unwrap_or_default())
}
