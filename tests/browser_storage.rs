//! Web Storage in real Chromium: get / set / remove / keys by prefix on localStorage and
//! sessionStorage, the page's memory stand-in, a blocked localStorage (memory, one warning, no
//! exception), a full quota (`QuotaExceeded`, the refused value kept in memory) and values
//! written by someone else, which are just strings to this layer.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use consent_analytics::ports::{FallbackStorage, Log, RecordingLog, Storage, StorageError};
use consent_analytics::web::storage::{local_storage_or_memory, WebStorage};
use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Runs `code` as the body of a function in the page and returns what it returns.
fn js(code: &str) -> JsValue {
    Function::new_no_args(code)
        .call0(&JsValue::UNDEFINED)
        .expect("test script threw")
}

/// Removes every key starting with `prefix` from `s`.
fn clean(s: &WebStorage, prefix: &str) {
    for k in s.keys_with_prefix(prefix).unwrap() {
        s.remove(&k).unwrap();
    }
}

/// get / set / remove / keys_with_prefix on one storage, under `prefix`.
fn round_trip(s: &WebStorage, prefix: &str) {
    let key = |k: &str| [prefix, k].concat();
    assert_eq!(s.get(&key("a")), Ok(None), "absent key");
    s.set(&key("a"), "1").unwrap();
    s.set(&key("b"), "two").unwrap();
    s.set("other:a", "x").unwrap();
    assert_eq!(s.get(&key("a")), Ok(Some("1".into())));
    s.set(&key("a"), "one").unwrap();
    assert_eq!(s.get(&key("a")), Ok(Some("one".into())), "overwritten");
    let mut keys = s.keys_with_prefix(prefix).unwrap();
    keys.sort();
    assert_eq!(keys, vec![key("a"), key("b")]);
    s.remove(&key("a")).unwrap();
    s.remove(&key("absent")).unwrap();
    assert_eq!(s.get(&key("a")), Ok(None), "removed");
    assert_eq!(s.keys_with_prefix(prefix).unwrap(), vec![key("b")]);
    clean(s, prefix);
    s.remove("other:a").unwrap();
    assert_eq!(s.keys_with_prefix(prefix).unwrap(), Vec::<String>::new());
}

#[wasm_bindgen_test]
fn local_storage_gets_sets_removes_and_lists_keys_by_prefix() {
    round_trip(&WebStorage::local(), "test-local:");
    // Written to the real localStorage, where the page sees it.
    WebStorage::local().set("test-local:seen", "yes").unwrap();
    assert_eq!(
        js("return localStorage.getItem('test-local:seen')"),
        JsValue::from_str("yes")
    );
    WebStorage::local().remove("test-local:seen").unwrap();
}

#[wasm_bindgen_test]
fn session_storage_gets_sets_removes_and_lists_keys_by_prefix() {
    round_trip(&WebStorage::session(), "test-session:");
    WebStorage::session()
        .set("test-session:seen", "yes")
        .unwrap();
    assert_eq!(
        js("return sessionStorage.getItem('test-session:seen')"),
        JsValue::from_str("yes")
    );
    assert!(js("return localStorage.getItem('test-session:seen')").is_null());
    WebStorage::session().remove("test-session:seen").unwrap();
}

#[wasm_bindgen_test]
fn memory_stand_in_is_one_map_for_the_page() {
    round_trip(&WebStorage::memory(), "test-memory:");
    // Every client of the page shares it; the browser storages do not see it.
    WebStorage::memory().set("test-memory:shared", "v").unwrap();
    assert_eq!(
        WebStorage::memory().get("test-memory:shared"),
        Ok(Some("v".into()))
    );
    assert_eq!(WebStorage::local().get("test-memory:shared"), Ok(None));
    // A key that sorts right after the prefix without starting with it is not listed.
    WebStorage::memory().set("test-memory;", "v").unwrap();
    assert_eq!(
        WebStorage::memory().keys_with_prefix("test-memory:"),
        Ok(vec!["test-memory:shared".to_string()])
    );
    clean(&WebStorage::memory(), "test-memory");
}

/// A `window.localStorage` that throws on access, as with blocked cookies or in a sandboxed
/// frame; `unblock` restores it.
fn block_local_storage() {
    js(
        "globalThis.__savedLocalStorage = Object.getOwnPropertyDescriptor(window, 'localStorage');
        Object.defineProperty(window, 'localStorage', {
            get() { throw new DOMException('blocked', 'SecurityError'); },
            configurable: true,
        });",
    );
}

/// Undoes [`block_local_storage`].
fn unblock_local_storage() {
    js("const d = globalThis.__savedLocalStorage;
        if (d) Object.defineProperty(window, 'localStorage', d);
        else delete window.localStorage;
        delete globalThis.__savedLocalStorage;");
}

#[wasm_bindgen_test]
fn blocked_local_storage_falls_back_to_memory_with_one_warning() {
    block_local_storage();
    let s = WebStorage::local();
    let results = (
        s.get("test-blocked:a"),
        s.set("test-blocked:a", "1"),
        s.remove("test-blocked:a"),
        s.keys_with_prefix("test-blocked:"),
    );
    let log = RecordingLog::default();
    let chosen = local_storage_or_memory(&log);
    chosen.set("test-blocked:id", "kept").unwrap();
    unblock_local_storage();

    let unavailable = Some(StorageError::Unavailable);
    assert_eq!(results.0.err(), unavailable);
    assert_eq!(results.1.err(), unavailable);
    assert_eq!(results.2.err(), unavailable);
    assert_eq!(results.3.err(), unavailable);
    assert_eq!(log.warnings.borrow().len(), 1, "{:?}", log.warnings);
    assert!(log.warnings.borrow()[0].starts_with("localStorage is unavailable"));
    // What was chosen is the page's memory stand-in, not localStorage.
    assert_eq!(
        WebStorage::memory().get("test-blocked:id"),
        Ok(Some("kept".into()))
    );
    assert_eq!(WebStorage::local().get("test-blocked:id"), Ok(None));
    clean(&WebStorage::memory(), "test-blocked:");
}

#[wasm_bindgen_test]
fn working_local_storage_is_chosen_without_a_warning() {
    let log = RecordingLog::default();
    let chosen = local_storage_or_memory(&log);
    chosen.set("test-chosen:id", "v").unwrap();
    assert_eq!(
        js("return localStorage.getItem('test-chosen:id')"),
        JsValue::from_str("v")
    );
    assert!(log.warnings.borrow().is_empty());
    chosen.remove("test-chosen:id").unwrap();
}

#[wasm_bindgen_test]
fn a_full_quota_is_quota_exceeded_and_fallback_keeps_the_value_in_memory() {
    let local = WebStorage::local();
    // Chromium holds about 5 MB per origin: fill it with 512 KiB values until it refuses one.
    let big = "x".repeat(512 * 1024);
    let mut refused = None;
    for i in 0..64 {
        let key = ["test-quota:fill:", &i.to_string()].concat();
        if let Err(e) = local.set(&key, &big) {
            refused = Some(e);
            break;
        }
    }

    let log: Rc<RecordingLog> = Rc::new(RecordingLog::default());
    let fallback = FallbackStorage::new(
        Rc::new(WebStorage::local()),
        Rc::new(WebStorage::memory()),
        log.clone() as Rc<dyn Log>,
    );
    fallback.set("test-quota:traits", &big);
    let kept = fallback.get("test-quota:traits");
    let in_local = local.get("test-quota:traits");
    let in_memory = WebStorage::memory().get("test-quota:traits").unwrap();
    let degraded = fallback.degraded();
    clean(&local, "test-quota:");
    fallback.remove("test-quota:traits");

    assert_eq!(refused, Some(StorageError::QuotaExceeded));
    assert_eq!(kept.as_deref(), Some(big.as_str()), "read back from memory");
    assert_eq!(in_local, Ok(None), "not in localStorage");
    assert_eq!(in_memory.map(|v| v.len()), Some(big.len()));
    assert!(degraded);
    assert_eq!(log.warnings.borrow().len(), 1, "{:?}", log.warnings);
    assert_eq!(WebStorage::memory().get("test-quota:traits"), Ok(None));
}

#[wasm_bindgen_test]
fn a_throw_that_is_not_a_quota_error_is_unavailable() {
    js("globalThis.__savedSetItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function () { throw new TypeError('refused'); };");
    let r = WebStorage::local().set("test-throw:a", "1");
    js("Storage.prototype.setItem = globalThis.__savedSetItem;
        delete globalThis.__savedSetItem;");
    assert_eq!(r, Err(StorageError::Unavailable));
    assert_eq!(WebStorage::local().get("test-throw:a"), Ok(None));
}

#[wasm_bindgen_test]
fn corrupt_or_foreign_values_are_just_strings() {
    js("localStorage.setItem('test-foreign:json', '{\"half\": ');
        localStorage.setItem('test-foreign:surrogate', '\\uD800abc');
        localStorage.setItem('test-foreign:empty', '');");
    let s = WebStorage::local();
    assert_eq!(s.get("test-foreign:json"), Ok(Some("{\"half\": ".into())));
    assert_eq!(s.get("test-foreign:empty"), Ok(Some(String::new())));
    // A lone surrogate cannot be UTF-8: it arrives replaced, not as an error.
    assert_eq!(
        s.get("test-foreign:surrogate"),
        Ok(Some("\u{FFFD}abc".into()))
    );
    clean(&s, "test-foreign:");
}
