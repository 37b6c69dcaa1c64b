//! The JavaScript API in real Chromium: config validation, event shape, bad input, identity,
//! consent routing, JavaScript destinations, isolation and source middleware.
#![cfg(target_arch = "wasm32")]

mod common;

use consent_analytics::api::Analytics;
use js_sys::{Array, Function, Object};
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use common::{get, obj, wait};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function recorder(name, opts) {
  const calls = [];
  const d = { name, calls, factory: (settings) => {
    const o = {
      initialize(s) { calls.push(['initialize', s]); },
      track(e) { if (opts && opts.throwOn === 'track') throw new Error('boom'); calls.push(['track', e]); },
      page(e) { calls.push(['page', e]); },
      identify(e) { calls.push(['identify', e]); },
      group(e) { calls.push(['group', e]); },
      alias(e) { calls.push(['alias', e]); },
      consent(e) { calls.push(['consent', e]); },
    };
    if (opts && opts.hang) o.track = () => new Promise(() => {});
    if (opts && opts.slowMs) o.track = (e) => new Promise(r => setTimeout(() => { calls.push(['track', e]); r(); }, opts.slowMs));
    return o;
  }};
  return d;
}
export function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
export function cyclic() { const a = { x: 1 }; a.self = a; return a; }
export function withFn() { return { f: () => 1 }; }
export function withBigInt() { return { n: BigInt(1) }; }
export function big() { return { s: 'x'.repeat(40000) }; }
export function clearStorage() { localStorage.clear(); sessionStorage.clear(); }
export function tracks(d) { return d.calls.filter(c => c[0] === 'track').map(c => c[1].event); }
export function countKind(d, k) { return d.calls.filter(c => c[0] === k).length; }
export function call(obj, name, args) { return obj[name](...args); }
export function breakStorage() {
  Object.defineProperty(window, 'localStorage', { configurable: true, get() { throw new DOMException('denied', 'SecurityError'); } });
}
export function healStorage() { delete window.localStorage; }
export function captureWarnings() {
  const warnings = [];
  const orig = console.warn;
  console.warn = (...a) => { warnings.push(a.join(' ')); orig.apply(console, a); };
  return { warnings, restore() { console.warn = orig; } };
}
export function captureLogs() {
  const lines = [];
  const orig = console.log;
  console.log = (...a) => { lines.push(a.join(' ')); orig.apply(console, a); };
  return { lines, restore() { console.log = orig; } };
}
export function setGpc(on) {
  Object.defineProperty(navigator, 'globalPrivacyControl', { configurable: true, get: () => on });
}
"#)]
extern "C" {
    fn recorder(name: &str, opts: JsValue) -> JsValue;
    fn sleep(ms: u32) -> js_sys::Promise;
    fn cyclic() -> JsValue;
    #[wasm_bindgen(js_name = withFn)]
    fn with_fn() -> JsValue;
    #[wasm_bindgen(js_name = withBigInt)]
    fn with_bigint() -> JsValue;
    fn big() -> JsValue;
    #[wasm_bindgen(js_name = clearStorage)]
    fn clear_storage();
    fn tracks(d: &JsValue) -> Array;
    #[wasm_bindgen(js_name = countKind)]
    fn count_kind(d: &JsValue, kind: &str) -> u32;
    #[wasm_bindgen(js_name = breakStorage)]
    fn break_storage();
    #[wasm_bindgen(js_name = healStorage)]
    fn heal_storage();
    #[wasm_bindgen(js_name = captureWarnings)]
    fn capture_warnings() -> JsValue;
    #[wasm_bindgen(js_name = setGpc)]
    fn set_gpc(on: bool);
    #[wasm_bindgen(js_name = captureLogs)]
    fn capture_logs() -> JsValue;
}

/// `Analytics.load` from Rust: the client, or what the promise rejected with.
async fn load(config: JsValue) -> Result<Analytics, JsValue> {
    let a = JsFuture::from(Analytics::load_promise(config)).await?;
    Ok(Analytics::try_from_js_value(a).expect("load resolves an Analytics"))
}

async fn load_err(cfg: &str) -> String {
    match load(obj(cfg)).await {
        Ok(_) => panic!("load should reject: {cfg}"),
        Err(e) => get(&e, "message").as_string().unwrap(),
    }
}

fn register(kind: &str, opts: &str) -> JsValue {
    let r = recorder(kind, obj(opts));
    Analytics::register_destination(kind.into(), get(&r, "factory")).unwrap();
    r
}

#[wasm_bindgen_test]
async fn load_rejects_unknown_keys_and_bad_fields_naming_them() {
    assert!(load_err(r#"{"debgu": true}"#)
        .await
        .contains("config.debgu"));
    assert!(load_err(r#"{"retry": {"maxRetry": 1}}"#)
        .await
        .contains("config.retry.maxRetry"));
    assert!(load_err(r#"{"consent": {"ads": true}}"#)
        .await
        .contains("config.consent.ads"));
    assert!(load_err(r#"{"loading": {"strategy": "soon"}}"#)
        .await
        .contains("config.loading.strategy"));
    let m = load_err(r#"{"destinations": [{"type": "nope"}]}"#).await;
    assert!(
        m.contains("config.destinations[0]") && m.contains("nope"),
        "{m}"
    );
    register("rec-dup", "{}");
    let m = load_err(r#"{"destinations": [{"type": "rec-dup"}, {"type": "rec-dup"}]}"#).await;
    assert!(m.contains("duplicate destination id rec-dup"), "{m}");
    let m =
        load_err(r#"{"destinations": [{"type": "rec-dup", "requiredConsent": ["ads"]}]}"#).await;
    assert!(m.contains("requiredConsent[0]"), "{m}");
    let m = load_err(r#"{"destinations": [{"type": "rec-dup", "id": ""}]}"#).await;
    assert_eq!(m, "config.destinations[0].id must be a non-empty string");
    let m = load_err(r#"{"scriptsUrl": "javascript:alert(1)"}"#).await;
    assert_eq!(
        m,
        "config.scriptsUrl must be an http(s) URL, got 'javascript:alert(1)'"
    );
}

#[wasm_bindgen_test]
async fn track_returns_a_uuid_and_builds_a_segment_event() {
    clear_storage();
    let r = register("rec-shape", "{}");
    let a = load(obj(
        r#"{"consent": {"measurement": true}, "destinations": [{"type": "rec-shape", "requiredConsent": ["measurement"]}]}"#,
    ))
    .await
    .unwrap();
    let id = a
        .track(
            "Order Completed".into(),
            obj(r#"{"revenue": 42}"#),
            JsValue::UNDEFINED,
        )
        .unwrap()
        .as_string()
        .expect("track returns the messageId as a string");
    assert!(consent_analytics::uuid::is_uuid(&id), "{id}");
    let r2 = r.clone();
    assert!(wait(move || tracks(&r2).length() == 1).await);
    let calls: Array = get(&r, "calls").unchecked_into();
    let ev = calls
        .iter()
        .find(|c| Array::from(c).get(0).as_string().as_deref() == Some("track"))
        .map(|c| Array::from(&c).get(1))
        .unwrap();
    assert_eq!(get(&ev, "type").as_string().as_deref(), Some("track"));
    assert_eq!(get(&ev, "messageId").as_string(), Some(id));
    assert_eq!(get(&get(&ev, "properties"), "revenue").as_f64(), Some(42.0));
    let ts = get(&ev, "timestamp").as_string().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    let anon = get(&ev, "anonymousId").as_string().unwrap();
    assert!(consent_analytics::uuid::is_uuid(&anon));
    let stored = web_sys::window()
        .unwrap()
        .local_storage()
        .unwrap()
        .unwrap()
        .get_item("consent-analytics:anonymousId")
        .unwrap();
    assert_eq!(stored, Some(anon));
    let ctx = get(&ev, "context");
    assert_eq!(
        get(&get(&ctx, "library"), "name").as_string().as_deref(),
        Some("consent-analytics")
    );
    let prefs = get(&get(&ctx, "consent"), "categoryPreferences");
    assert_eq!(get(&prefs, "measurement").as_bool(), Some(true));
    assert_eq!(get(&prefs, "marketing").as_bool(), Some(false));
    assert_eq!(get(&prefs, "necessary").as_bool(), Some(true));
    assert!(get(&get(&ctx, "page"), "url").as_string().is_some());
}

#[wasm_bindgen_test]
async fn bad_input_throws_a_type_error_naming_the_argument_and_queues_nothing() {
    let r = register("rec-bad", "{}");
    let a = load(obj(r#"{"destinations": [{"type": "rec-bad"}]}"#))
        .await
        .unwrap();
    let cases: Vec<(JsValue, JsValue, &str)> = vec![
        ("".into(), JsValue::UNDEFINED, "event"),
        (JsValue::from(5), JsValue::UNDEFINED, "event"),
        ("E".into(), JsValue::from_str("props"), "properties"),
        ("E".into(), Array::new().into(), "properties"),
        ("E".into(), cyclic(), "properties.self"),
        ("E".into(), with_fn(), "properties.f"),
        ("E".into(), with_bigint(), "properties.n"),
        ("E".into(), big(), "32 KB"),
    ];
    for (name, props, needle) in cases {
        let err = a.track(name, props, JsValue::UNDEFINED).unwrap_err();
        assert!(err.is_instance_of::<js_sys::TypeError>());
        let m = get(&err, "message").as_string().unwrap();
        assert!(m.contains(needle), "{m} should name {needle}");
    }
    let err = a
        .track("E".into(), JsValue::UNDEFINED, obj(r#"{"colour": 1}"#))
        .unwrap_err();
    assert!(get(&err, "message").as_string().unwrap().contains("colour"));
    a.track("Good".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let r2 = r.clone();
    assert!(wait(move || tracks(&r2).length() == 1).await);
    JsFuture::from(sleep(50)).await.unwrap();
    assert_eq!(tracks(&r).length(), 1, "only the valid event was queued");
}

#[wasm_bindgen_test]
async fn events_reach_only_destinations_whose_consent_was_given_at_capture() {
    let m = register("rec-marketing", "{}");
    let n = register("rec-necessary", "{}");
    let a = load(obj(
        r#"{"destinations": [{"type": "rec-marketing", "requiredConsent": ["marketing"]}, {"type": "rec-necessary"}]}"#,
    ))
    .await
    .unwrap();
    a.track("Before".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    JsFuture::from(a.set_consent(obj(r#"{"marketing": true}"#)))
        .await
        .unwrap();
    a.track("After".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let (m2, n2) = (m.clone(), n.clone());
    assert!(wait(move || tracks(&m2).length() == 1 && tracks(&n2).length() == 2).await);
    assert_eq!(tracks(&m).get(0).as_string().as_deref(), Some("After"));
    // Revoking stops routing; the destination hears about the change.
    JsFuture::from(a.set_consent(obj(r#"{"marketing": false}"#)))
        .await
        .unwrap();
    a.track("Revoked".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let n3 = n.clone();
    assert!(wait(move || tracks(&n3).length() == 3).await);
    let m3 = m.clone();
    assert!(wait(move || count_kind(&m3, "consent") >= 1).await);
    assert_eq!(tracks(&m).length(), 1);
    assert_eq!(count_kind(&m, "initialize"), 1, "initialised once");
}

#[wasm_bindgen_test]
async fn set_consent_rejects_unknown_purposes_and_keeps_necessary() {
    let a = load(JsValue::UNDEFINED).await.unwrap();
    let err = JsFuture::from(a.set_consent(obj(r#"{"ads": true}"#)))
        .await
        .unwrap_err();
    assert!(get(&err, "message").as_string().unwrap().contains("ads"));
    JsFuture::from(a.set_consent(obj(r#"{"necessary": false, "experience": true}"#)))
        .await
        .unwrap();
    let c = a.consent();
    assert_eq!(Object::keys(c.unchecked_ref::<Object>()).length(), 5);
    assert_eq!(get(&c, "necessary").as_bool(), Some(true));
    assert_eq!(get(&c, "experience").as_bool(), Some(true));
    assert_eq!(get(&c, "marketing").as_bool(), Some(false));
}

#[wasm_bindgen_test]
async fn a_throwing_destination_does_not_affect_a_healthy_one() {
    let bad = register("rec-throws", r#"{"throwOn": "track"}"#);
    let hang = register("rec-hangs", r#"{"hang": true}"#);
    let good = register("rec-healthy", "{}");
    let a = load(obj(
        r#"{"retry": {"maxRetries": 0}, "destinations": [{"type": "rec-throws"}, {"type": "rec-hangs"}, {"type": "rec-healthy"}]}"#,
    ))
    .await
    .unwrap();
    for i in 0..20 {
        a.track(
            format!("E{i}").into(),
            JsValue::UNDEFINED,
            JsValue::UNDEFINED,
        )
        .unwrap();
    }
    let g = good.clone();
    assert!(wait(move || tracks(&g).length() == 20).await);
    let order: Vec<String> = tracks(&good)
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("E{i}")).collect();
    assert_eq!(order, expected, "delivered in capture order");
    let _ = (bad, hang);
    let status = a.status();
    let healthy = status.get(2);
    assert_eq!(get(&healthy, "delivered").as_f64(), Some(20.0));
    let throws = status.get(0);
    assert_eq!(get(&throws, "delivered").as_f64(), Some(0.0));
    assert!(get(&throws, "failed").as_f64().unwrap() >= 1.0);
    assert_eq!(
        get(&get(&throws, "lastError"), "kind")
            .as_string()
            .as_deref(),
        Some("unknown")
    );
}

#[wasm_bindgen_test]
async fn source_middleware_changes_or_drops_events_and_a_throwing_one_drops() {
    let r = register("rec-mw", "{}");
    let a = load(obj(r#"{"destinations": [{"type": "rec-mw"}]}"#))
        .await
        .unwrap();
    let mw = Function::new_with_args(
        "e",
        "if (e.event === 'Drop') return null; if (e.event === 'Throw') throw new Error('x'); e.properties.cleaned = true; return e;",
    );
    a.add_source_middleware(mw.into()).unwrap();
    let errors = Array::new();
    let errs = errors.clone();
    let on_err = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        errs.push(&e);
    });
    a.on("error".into(), on_err.as_ref().clone()).unwrap();
    for n in ["Keep", "Drop", "Throw", "Keep2"] {
        a.track(n.into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
            .unwrap();
    }
    let r2 = r.clone();
    assert!(wait(move || tracks(&r2).length() == 2).await);
    JsFuture::from(sleep(50)).await.unwrap();
    let names: Vec<String> = tracks(&r).iter().map(|v| v.as_string().unwrap()).collect();
    assert_eq!(names, vec!["Keep", "Keep2"]);
    assert_eq!(
        errors.length(),
        1,
        "the throwing middleware emitted one error"
    );
    on_err.forget();
}

#[wasm_bindgen_test]
async fn global_privacy_control_denies_marketing_and_measurement_until_the_user_grants() {
    set_gpc(true);
    let a = load(obj(
        r#"{"consent": {"marketing": true, "measurement": true, "functionality": true}}"#,
    ))
    .await
    .unwrap();
    let c = a.consent();
    assert_eq!(get(&c, "marketing").as_bool(), Some(false));
    assert_eq!(get(&c, "measurement").as_bool(), Some(false));
    assert_eq!(get(&c, "functionality").as_bool(), Some(true));
    JsFuture::from(a.set_consent(obj(r#"{"marketing": true}"#)))
        .await
        .unwrap();
    assert_eq!(get(&a.consent(), "marketing").as_bool(), Some(true));
    let b = load(obj(
        r#"{"honorGpc": false, "consent": {"marketing": true}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(get(&b.consent(), "marketing").as_bool(), Some(true));
    set_gpc(false);
}

#[wasm_bindgen_test]
async fn identify_persists_and_reset_starts_a_new_anonymous_identity() {
    clear_storage();
    let r = register("rec-identity", "{}");
    let a = load(obj(r#"{"destinations": [{"type": "rec-identity"}]}"#))
        .await
        .unwrap();
    a.identify("u-42".into(), obj(r#"{"plan": "pro"}"#), JsValue::UNDEFINED)
        .unwrap();
    let ls = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    assert_eq!(
        ls.get_item("consent-analytics:userId").unwrap().as_deref(),
        Some("u-42")
    );
    assert!(ls
        .get_item("consent-analytics:traits")
        .unwrap()
        .unwrap()
        .contains("pro"));
    let anon = ls
        .get_item("consent-analytics:anonymousId")
        .unwrap()
        .unwrap();
    // A second instance (a reload) sees the same identity.
    let b = load(obj(
        r#"{"destinations": [{"type": "rec-identity", "id": "second"}]}"#,
    ))
    .await
    .unwrap();
    b.track("Again".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let r2 = r.clone();
    assert!(wait(move || tracks(&r2).length() == 1).await);
    let calls: Array = get(&r, "calls").unchecked_into();
    let ev = calls
        .iter()
        .map(|c| Array::from(&c))
        .find(|c| c.get(0).as_string().as_deref() == Some("track"))
        .map(|c| c.get(1))
        .unwrap();
    assert_eq!(get(&ev, "userId").as_string().as_deref(), Some("u-42"));
    assert_eq!(get(&ev, "anonymousId").as_string(), Some(anon.clone()));
    b.reset();
    assert_eq!(ls.get_item("consent-analytics:userId").unwrap(), None);
    let anon2 = ls
        .get_item("consent-analytics:anonymousId")
        .unwrap()
        .unwrap();
    assert_ne!(anon, anon2);
    assert!(consent_analytics::uuid::is_uuid(&anon2));
}

#[wasm_bindgen_test]
async fn debug_logs_routing_loads_and_deliveries_and_is_quiet_without_it() {
    let cap = capture_logs();
    let r = register("rec-debug", "{}");
    let quiet = load(obj(
        r#"{"destinations": [{"type": "rec-debug", "id": "quiet"}]}"#,
    ))
    .await
    .unwrap();
    quiet
        .track("Quiet".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let r2 = r.clone();
    assert!(wait(move || tracks(&r2).length() == 1).await);
    let lines: Array = get(&cap, "lines").unchecked_into();
    let ours = |lines: &Array| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.as_string())
            .filter(|l| l.starts_with("[consent-analytics]"))
            .collect()
    };
    assert_eq!(ours(&lines), Vec::<String>::new(), "quiet without debug");
    let loud = load(obj(
        r#"{"debug": true, "destinations": [{"type": "rec-debug", "id": "loud", "requiredConsent": ["marketing"]}, {"type": "rec-debug", "id": "open"}]}"#,
    ))
    .await
    .unwrap();
    loud.track("Loud".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    let r3 = r.clone();
    assert!(wait(move || tracks(&r3).length() == 2).await);
    JsFuture::from(sleep(20)).await.unwrap();
    let restore = get(&cap, "restore").unchecked_into::<Function>();
    restore.call0(&cap).unwrap();
    let logged = ours(&lines).join("\n");
    assert!(logged.contains("loud: blocked by consent"), "{logged}");
    assert!(logged.contains("open: routed"), "{logged}");
    assert!(logged.contains("loading open"), "{logged}");
    assert!(logged.contains("delivered 1 event(s) to open"), "{logged}");
}

/// A UUID with the version-4 nibble and the RFC 4122 variant (8, 9, a or b), lowercase.
fn assert_v4(id: &str) {
    assert!(consent_analytics::uuid::is_uuid(id), "{id}");
    assert_eq!(&id[14..15], "4", "{id}");
    assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    assert_eq!(id, id.to_lowercase());
}

#[wasm_bindgen_test]
fn browser_uuids_are_distinct_v4_with_and_without_random_uuid() {
    use consent_analytics::web::platform::{uuid, uuid_from_words};
    let mut seen = std::collections::HashSet::new();
    for _ in 0..500 {
        for id in [uuid(), uuid_from_words()] {
            assert_v4(&id);
            assert!(seen.insert(id));
        }
    }
}
