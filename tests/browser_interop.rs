//! Calling page code and reading page values in real Chromium: a throwing getter or proxy is an
//! `Err` (never an exception through the wasm), JavaScript destination hooks that throw, reject
//! or return a thenable, the source middleware chain, listener snapshots, and the event checks
//! and completion built on them.
#![cfg(target_arch = "wasm32")]

mod common;

use consent_analytics::api::Analytics;
use consent_analytics::web::event::{check_json_value, iso_date, page_context};
use consent_analytics::web::js;
use consent_analytics::web::platform::error_message;
use js_sys::{Array, Function, Reflect};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use common::{get, obj, wait};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function throwingProxy() {
  const trap = () => { throw new Error('trap'); };
  return new Proxy({}, { get: trap, ownKeys: trap, getPrototypeOf: trap });
}
export function throwingGetter() { return { ok: 1, get boom() { throw new Error('getter'); } }; }
export function throwingMessage() { return { get message() { throw new Error('again'); }, toString() { return 'plain'; } }; }
export function nested(n) { const top = {}; let cur = top; for (let i = 0; i < n; i++) { cur.n = {}; cur = cur.n; } return top; }
export function withSymbol() { return { list: [1, { s: Symbol('x') }] }; }
export function fakeDate() { return Object.create(Date.prototype); }
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
// A destination whose hooks behave as `how` says; `log` records what it was called with.
export function hookDestination(how) {
  const log = [];
  const factory = () => ({
    track(e) {
      log.push(['track', e.event]);
      if (how === 'throw') throw new Error('thrown');
      if (how === 'reject') return Promise.reject(new Error('rejected'));
      if (how === 'thenable') return { then(resolve) { setTimeout(() => { log.push(['settled']); resolve(7); }, 20); } };
    },
    onAfterEvent(e, result) { log.push(['after', e.event, result]); },
    onError(err, e) { log.push(['error', err && err.message, e && e.event]); },
  });
  return { log, factory };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = throwingProxy)]
    fn throwing_proxy() -> JsValue;
    #[wasm_bindgen(js_name = throwingGetter)]
    fn throwing_getter() -> JsValue;
    #[wasm_bindgen(js_name = throwingMessage)]
    fn throwing_message() -> JsValue;
    fn nested(n: u32) -> JsValue;
    #[wasm_bindgen(js_name = withSymbol)]
    fn with_symbol() -> JsValue;
    #[wasm_bindgen(js_name = fakeDate)]
    fn fake_date() -> JsValue;
    fn sleep(ms: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = hookDestination)]
    fn hook_destination(how: &str) -> JsValue;
}

async fn load(config: &str) -> Analytics {
    let a = JsFuture::from(Analytics::load_promise(obj(config)))
        .await
        .unwrap();
    Analytics::try_from_js_value(a).expect("load resolves an Analytics")
}

/// The log of a [`hook_destination`] as JSON, for comparing.
fn log_json(d: &JsValue) -> String {
    js_sys::JSON::stringify(&get(d, "log"))
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
fn a_throwing_getter_or_proxy_is_an_err_not_an_exception() {
    let proxy = throwing_proxy();
    assert!(js::get(&proxy, "x").is_undefined());
    assert_eq!(
        js::keys_at(&proxy, "config").unwrap_err(),
        "config: value could not be read: trap"
    );
    assert_eq!(
        js::entries(&proxy, "").unwrap_err(),
        "value could not be read: trap"
    );
    assert!(js::items(&proxy, "list").is_err());
    assert!(!js::is_plain_object(&proxy));
    assert!(js::merged(&[&proxy]).is_err());
    assert!(js::get(&throwing_getter(), "boom").is_undefined());
    assert_eq!(js::get(&throwing_getter(), "ok").as_f64(), Some(1.0));
    // The message of a thrown value whose `message` getter throws: String(value).
    assert_eq!(error_message(&throwing_message()), "plain");
    assert_eq!(error_message(&"text".into()), "text");
    assert_eq!(js::to_js_string(&JsValue::from(1e21)).unwrap(), "1e+21");
}

#[wasm_bindgen_test]
fn json_problems_name_the_path() {
    let check = |v: &JsValue| check_json_value(v, "properties").unwrap_err();
    // Reading the entries of the object whose getter throws fails: the path names it.
    let outer = obj(r#"{"list": [0]}"#);
    Reflect::set(&get(&outer, "list"), &0.into(), &throwing_getter()).unwrap();
    assert_eq!(
        check(&outer),
        "properties.list[0]: value could not be read: getter"
    );
    assert_eq!(
        check(&throwing_proxy()),
        "properties: value could not be read: trap"
    );
    assert_eq!(
        check(&with_symbol()),
        "properties.list[1].s is a symbol, which JSON cannot carry"
    );
    let cyclic = obj(r#"{"a": {}}"#);
    Reflect::set(&get(&cyclic, "a"), &"back".into(), &cyclic).unwrap();
    assert_eq!(check(&cyclic), "properties.a.back is a circular reference");
    assert!(check(&nested(80)).ends_with(" is nested too deeply"));
    assert!(check_json_value(&nested(60), "p").is_ok());
    // A Date says itself what it becomes (toJSON).
    assert!(check_json_value(&js_sys::Date::new_0().into(), "p").is_ok());
    assert!(check_json_value(&obj(r#"{"a": [1, "x", null, {"b": true}]}"#), "p").is_ok());
}

#[wasm_bindgen_test]
fn iso_date_reads_dates_and_date_strings_only() {
    let iso = |v: &JsValue| iso_date(v).and_then(|s| s.as_string());
    assert_eq!(
        iso(&"2026-01-02T03:04:05Z".into()).as_deref(),
        Some("2026-01-02T03:04:05.000Z")
    );
    let d = js_sys::Date::new(&JsValue::from(0));
    assert_eq!(iso(&d.into()).as_deref(), Some("1970-01-01T00:00:00.000Z"));
    assert_eq!(iso(&"not a date".into()), None);
    assert_eq!(iso(&"".into()), None);
    assert_eq!(iso(&JsValue::from(5)), None);
    // Inherits from Date.prototype without being a Date: toISOString throws, caught.
    assert_eq!(iso(&fake_date()), None);
}

#[wasm_bindgen_test]
fn merged_keeps_a_proto_key_an_own_key_and_page_context_reads_the_document() {
    let evil = obj(r#"{"__proto__": {"isAdmin": true}, "plan": "free"}"#);
    let m = js::merged(&[&obj(r#"{"plan": "paid", "a": 1}"#), &evil]).unwrap();
    let keys: Vec<String> = js::keys_at(&m, "")
        .unwrap()
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    assert_eq!(keys, ["plan", "a", "__proto__"]);
    assert!(js::get(&m, "isAdmin").is_undefined());
    assert_eq!(js::get(&m, "plan").as_string().as_deref(), Some("free"));
    let page = page_context();
    let href = web_sys::window().unwrap().location().href().unwrap();
    assert_eq!(
        js::get(&page, "url").as_string().unwrap(),
        href.split('#').next().unwrap()
    );
    assert_eq!(js::keys_at(&page, "").unwrap().length(), 5);
    // The page's fields follow the document: a new URL, a new title, each a new object.
    let window = web_sys::window().unwrap();
    let document = window.document().unwrap();
    let title = document.title();
    let history = window.history().unwrap();
    history
        .push_state_with_url(&JsValue::NULL, "", Some("/moved/here?x=1#frag"))
        .unwrap();
    document.set_title("Moved");
    let moved = page_context();
    history
        .push_state_with_url(&JsValue::NULL, "", Some(&href))
        .unwrap();
    document.set_title(&title);
    let field = |p: &js_sys::Object, k: &str| js::get(p, k).as_string().unwrap();
    assert_eq!(field(&moved, "path"), "/moved/here");
    assert_eq!(field(&moved, "search"), "?x=1");
    assert!(field(&moved, "url").ends_with("/moved/here?x=1"));
    assert_eq!(field(&moved, "title"), "Moved");
    let back = page_context();
    assert_eq!(field(&back, "url"), field(&page, "url"));
    assert_eq!(field(&back, "title"), title);
    assert_ne!(JsValue::from(back), JsValue::from(page));
}

/// Loads one destination made by [`hook_destination`] and tracks `Order` then `Next`.
async fn deliver_with(how: &str) -> JsValue {
    let d = hook_destination(how);
    let kind = ["hooks-", how].concat();
    Analytics::register_destination(kind.as_str().into(), get(&d, "factory")).unwrap();
    let cfg = [
        r#"{"retry": {"maxRetries": 0}, "destinations": [{"type": ""#,
        &kind,
        r#"", "requiredConsent": []}]}"#,
    ]
    .concat();
    let a = load(&cfg).await;
    a.track("Order".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    std::mem::forget(a);
    d
}

#[wasm_bindgen_test]
async fn a_hook_that_throws_or_rejects_is_told_to_on_error_once_and_on_after_event_is_skipped() {
    for (how, message) in [("throw", "thrown"), ("reject", "rejected")] {
        let d = deliver_with(how).await;
        let d2 = d.clone();
        assert!(wait(move || log_json(&d2).contains("error")).await, "{how}");
        JsFuture::from(sleep(30)).await.unwrap();
        let log = log_json(&d);
        assert!(
            log.starts_with(
                &[r#"[["track","Order"],["error",""#, message, r#"","Order"]"#].concat()
            ),
            "{how}: {log}"
        );
        assert!(
            !log.contains("after"),
            "{how}: no onAfterEvent after a failure: {log}"
        );
        assert_eq!(log.matches("error").count(), log.matches("track").count());
    }
}

#[wasm_bindgen_test]
async fn a_thenable_a_hook_returns_is_awaited_before_on_after_event() {
    let d = deliver_with("thenable").await;
    let d2 = d.clone();
    assert!(wait(move || log_json(&d2).contains("after")).await);
    assert_eq!(
        log_json(&d),
        r#"[["track","Order"],["settled"],["after","Order",7]]"#
    );
}

#[wasm_bindgen_test]
async fn source_middleware_runs_in_order_awaits_promises_and_null_drops() {
    let d = hook_destination("ok");
    Analytics::register_destination("mw-order".into(), get(&d, "factory")).unwrap();
    let a = load(r#"{"destinations": [{"type": "mw-order", "requiredConsent": []}]}"#).await;
    let seen = Array::new();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let first = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |e: JsValue| {
        s1.push(
            &["1:", &get(&e, "event").as_string().unwrap()]
                .concat()
                .into(),
        );
        // A promise of an unchanged event (undefined).
        js_sys::Promise::resolve(&JsValue::UNDEFINED).into()
    });
    let second = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |e: JsValue| {
        let name = get(&e, "event").as_string().unwrap();
        s2.push(&["2:", &name].concat().into());
        if name == "Drop" {
            return JsValue::NULL;
        }
        Reflect::set(&get(&e, "properties"), &"tagged".into(), &true.into()).unwrap();
        e
    });
    let third = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |e: JsValue| {
        s3.push(
            &["3:", &get(&e, "event").as_string().unwrap()]
                .concat()
                .into(),
        );
        JsValue::UNDEFINED
    });
    for f in [&first, &second, &third] {
        a.add_source_middleware(f.as_ref().clone()).unwrap();
    }
    for name in ["Keep", "Drop", "Last"] {
        a.track(name.into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
            .unwrap();
    }
    let d2 = d.clone();
    assert!(wait(move || log_json(&d2).matches("after").count() == 2).await);
    let order: Vec<String> = seen.iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(
        order,
        ["1:Keep", "2:Keep", "3:Keep", "1:Drop", "2:Drop", "1:Last", "2:Last", "3:Last"]
    );
    assert_eq!(
        log_json(&d),
        r#"[["track","Keep"],["after","Keep",null],["track","Last"],["after","Last",null]]"#
    );
    std::mem::forget((first, second, third, a));
}

#[wasm_bindgen_test]
async fn a_listener_added_during_an_emit_waits_for_the_next_one() {
    let d = hook_destination("ok");
    Analytics::register_destination("snapshot".into(), get(&d, "factory")).unwrap();
    let a = std::rc::Rc::new(
        load(r#"{"destinations": [{"type": "snapshot", "requiredConsent": []}]}"#).await,
    );
    let calls = Array::new();
    let late_calls = calls.clone();
    let late = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        late_calls.push(
            &[
                "late:",
                &get(&get(&e, "event"), "event").as_string().unwrap(),
            ]
            .concat()
            .into(),
        );
    });
    let late_fn: JsValue = late.as_ref().clone();
    let (first_calls, a2) = (calls.clone(), a.clone());
    let added = std::cell::Cell::new(false);
    let first = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        first_calls.push(
            &[
                "first:",
                &get(&get(&e, "event"), "event").as_string().unwrap(),
            ]
            .concat()
            .into(),
        );
        if !added.replace(true) {
            a2.on("delivered".into(), late_fn.clone()).unwrap();
        }
        // A throwing listener is logged, and the others still run.
    });
    let thrower = Function::new_with_args("e", "throw new Error('listener')");
    a.on("delivered".into(), first.as_ref().clone()).unwrap();
    a.on("delivered".into(), thrower.into()).unwrap();
    a.track("One".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let c2 = calls.clone();
    assert!(wait(move || c2.length() == 1).await);
    a.track("Two".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let c3 = calls.clone();
    assert!(wait(move || c3.length() == 3).await);
    let got: Vec<String> = calls.iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(got, ["first:One", "first:Two", "late:Two"]);
    std::mem::forget((first, late, a));
}
