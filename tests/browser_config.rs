//! `Analytics.load(config)` validation in real Chromium: every refused config rejects with an
//! Error whose message names the field, word for word, and settings that cannot work are
//! refused at load.
#![cfg(target_arch = "wasm32")]

mod common;

use consent_analytics::api::Analytics;
use consent_analytics::web::config::{parse_consent_object, parse_purpose_list};
use consent_analytics::web::inject::parse_descriptor;
use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use common::obj;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function sameObjectConfig(kind) {
  const settings = { nested: { a: 1 }, list: [1, 2] };
  return { settings, config: { destinations: [{ type: kind, settings }] } };
}
export function throwingGetter() {
  return { get destinations() { throw new Error('x'); } };
}
export function throwingSettingsGetter() {
  return { destinations: [{ type: 'relay', settings: { get endpoint() { throw new Error('y'); } } }] };
}
export function throwingProxy() {
  return new Proxy({}, { ownKeys() { throw new Error('trap'); } });
}
export function storedKeys() { return Object.keys(localStorage); }
export function clearStorage() { localStorage.clear(); sessionStorage.clear(); }
export async function storedKey(key) {
  for (let i = 0; i < 500 && localStorage.getItem(key) === null; i++) await new Promise(r => setTimeout(r, 10));
  return localStorage.getItem(key) !== null;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sameObjectConfig)]
    fn same_object_config(kind: &str) -> JsValue;
    #[wasm_bindgen(js_name = throwingGetter)]
    fn throwing_getter() -> JsValue;
    #[wasm_bindgen(js_name = throwingSettingsGetter)]
    fn throwing_settings_getter() -> JsValue;
    #[wasm_bindgen(js_name = throwingProxy)]
    fn throwing_proxy() -> JsValue;
    #[wasm_bindgen(js_name = storedKeys)]
    fn stored_keys() -> js_sys::Array;
    #[wasm_bindgen(js_name = clearStorage)]
    fn clear_storage();
    /// Resolves to whether localStorage has `key`, waiting for it a while.
    #[wasm_bindgen(js_name = storedKey)]
    fn stored_key(key: &str) -> js_sys::Promise;
}

/// What `Analytics.load(config)` rejected with (its message), or `None` when it loaded.
async fn load_error(config: JsValue) -> Option<String> {
    match JsFuture::from(Analytics::load_promise(config)).await {
        Ok(_) => None,
        Err(e) => Some(
            Reflect::get(&e, &"message".into())
                .unwrap()
                .as_string()
                .unwrap(),
        ),
    }
}

/// Asserts that each config (JSON) is refused with exactly its message.
async fn refused(cases: &[(&str, &str)]) {
    for (json, want) in cases {
        let got = load_error(obj(json)).await;
        assert_eq!(got.as_deref(), Some(*want), "config {json}");
    }
}

#[wasm_bindgen_test]
async fn top_level_and_section_errors_name_the_field() {
    refused(&[
        ("5", "config must be an object"),
        ("[]", "config must be an object"),
        (r#"{"debgu": true}"#, "unknown option config.debgu"),
        (r#"{"debug": 1}"#, "config.debug must be a boolean"),
        (r#"{"debug": null}"#, "config.debug must be a boolean"),
        (r#"{"honorGpc": "yes"}"#, "config.honorGpc must be a boolean"),
        (r#"{"purgeOnRevoke": 0}"#, "config.purgeOnRevoke must be a boolean"),
        (r#"{"nonce": 5}"#, "config.nonce must be a string"),
        (r#"{"storagePrefix": false}"#, "config.storagePrefix must be a string"),
        (
            r#"{"scriptsCacheTtlMs": -1}"#,
            "config.scriptsCacheTtlMs must be a non-negative integer",
        ),
        (
            r#"{"scriptsUrl": "javascript:alert(1)"}"#,
            "config.scriptsUrl must be an http(s) URL, got 'javascript:alert(1)'",
        ),
        (r#"{"scriptsUrl": 1}"#, "config.scriptsUrl must be a string"),
        (r#"{"retry": 1}"#, "config.retry must be an object"),
        (r#"{"retry": {"maxRetry": 1}}"#, "unknown option config.retry.maxRetry"),
        (
            r#"{"retry": {"maxRetries": -1}}"#,
            "config.retry.maxRetries must be a non-negative integer",
        ),
        (
            r#"{"retry": {"maxRetries": 1.5}}"#,
            "config.retry.maxRetries must be a non-negative integer",
        ),
        (
            r#"{"retry": {"baseDelayMs": "1"}}"#,
            "config.retry.baseDelayMs must be a non-negative integer",
        ),
        (
            r#"{"retry": {"multiplier": 0}}"#,
            "config.retry.multiplier must be a positive number",
        ),
        (r#"{"retry": {"jitter": "no"}}"#, "config.retry.jitter must be a boolean"),
        (
            r#"{"circuitBreaker": {"failureThreshold": "5"}}"#,
            "config.circuitBreaker.failureThreshold must be a non-negative integer",
        ),
        (
            r#"{"circuitBreaker": {"halfOpen": 1}}"#,
            "unknown option config.circuitBreaker.halfOpen",
        ),
        (r#"{"deadLetter": []}"#, "config.deadLetter must be an object"),
        (
            r#"{"deadLetter": {"storageKey": 1}}"#,
            "config.deadLetter.storageKey must be a string",
        ),
        (
            r#"{"deadLetter": {"maxSize": -2}}"#,
            "config.deadLetter.maxSize must be a non-negative integer",
        ),
        (
            r#"{"loading": {"strategy": "soon"}}"#,
            "config.loading.strategy must be 'lazy' or 'eager'",
        ),
        (
            r#"{"loading": {"strategy": 1}}"#,
            "config.loading.strategy must be a string",
        ),
        (
            r#"{"loading": {"bufferLimit": true}}"#,
            "config.loading.bufferLimit must be a non-negative integer",
        ),
        (r#"{"loading": {"lazy": true}}"#, "unknown option config.loading.lazy"),
        (
            r#"{"consent": true}"#,
            "config.consent must be an object of purpose: boolean",
        ),
        (
            r#"{"consent": {"ads": true}}"#,
            "unknown consent purpose config.consent.ads (expected necessary, functionality, experience, measurement, marketing)",
        ),
        (
            r#"{"consent": {"marketing": "yes"}}"#,
            "config.consent.marketing must be a boolean",
        ),
    ])
    .await;
}

#[wasm_bindgen_test]
async fn destination_entry_errors_name_the_entry() {
    refused(&[
        (r#"{"destinations": {}}"#, "config.destinations must be an array"),
        (r#"{"destinations": [5]}"#, "config.destinations[0] must be an object"),
        (r#"{"destinations": [{}]}"#, "config.destinations[0].type is required"),
        (
            r#"{"destinations": [{"type": ""}]}"#,
            "config.destinations[0].type is required",
        ),
        (
            r#"{"destinations": [{"type": 1}]}"#,
            "config.destinations[0].type must be a string",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "settings": {"containerId": "GTM-ABC1"}, "enable": true}]}"#,
            "unknown option config.destinations[0].enable",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "id": ""}]}"#,
            "config.destinations[0].id must be a non-empty string",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "enabled": "no"}]}"#,
            "config.destinations[0].enabled must be a boolean",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "settings": []}]}"#,
            "config.destinations[0].settings must be an object",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "requiredConsent": "marketing"}]}"#,
            "config.destinations[0].requiredConsent must be an array of purpose names",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "requiredConsent": ["ads"]}]}"#,
            "config.destinations[0].requiredConsent[0] is not a consent purpose: ads",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "settings": {"containerId": "GTM-ABC1"}}, {"type": "gtm", "settings": {"containerId": "GTM-ABC1"}}]}"#,
            "config.destinations[1]: duplicate destination id gtm",
        ),
        (
            r#"{"destinations": [{"type": "nope"}]}"#,
            "config.destinations[0]: unknown destination type 'nope' (register it with Analytics.registerDestination first)",
        ),
    ])
    .await;
}

#[wasm_bindgen_test]
async fn built_in_settings_errors_name_the_setting() {
    refused(&[
        (
            r#"{"destinations": [{"type": "relay"}]}"#,
            "config.destinations[0].settings.endpoint is required (the URL of the batch endpoint)",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "batchsize": 1}}]}"#,
            "unknown option config.destinations[0].settings.batchsize",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "ftp://x/e"}}]}"#,
            "config.destinations[0].settings.endpoint must be an http(s) URL, got 'ftp://x/e'",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": 5}}]}"#,
            "config.destinations[0].settings.endpoint must be a string",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"X-Site": 1}}}]}"#,
            "config.destinations[0].settings.headers.X-Site must be a string",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": 1}}]}"#,
            "config.destinations[0].settings.headers must be an object",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "batchSize": 0}}]}"#,
            "config.destinations[0].settings.batchSize must be at least 1",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "maxBatchBytes": -1}}]}"#,
            "config.destinations[0].settings.maxBatchBytes must be a non-negative integer",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "flushIntervalMs": "1"}}]}"#,
            "config.destinations[0].settings.flushIntervalMs must be a non-negative integer",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "beacon": 1}}]}"#,
            "config.destinations[0].settings.beacon must be a boolean",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "writeKey": 1}}]}"#,
            "config.destinations[0].settings.writeKey must be a string",
        ),
        (
            r#"{"destinations": [{"type": "posthog", "settings": {}}]}"#,
            "config.destinations[0].settings.apiKey is required",
        ),
        (
            r#"{"destinations": [{"type": "posthog", "settings": {"apiKey": 7}}]}"#,
            "config.destinations[0].settings.apiKey must be a string",
        ),
        (
            r#"{"destinations": [{"type": "posthog", "settings": {"apiKey": "k", "apiHost": "eu.i.posthog.com"}}]}"#,
            "config.destinations[0].settings.apiHost must be an http(s) URL: eu.i.posthog.com",
        ),
        (
            r#"{"destinations": [{"type": "meta-pixel"}]}"#,
            "config.destinations[0].settings.pixelId is required",
        ),
        (
            r#"{"destinations": [{"type": "ga4", "settings": {"measurementId": "G-1", "sendPageView": true}}]}"#,
            "unknown option config.destinations[0].settings.sendPageView",
        ),
        (
            r#"{"destinations": [{"type": "gtm", "settings": {"containerId": "GTM-ABC1", "scriptSrc": " "}}]}"#,
            "config.destinations[0].settings.scriptSrc must be a non-empty URL",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {}}]}"#,
            "config.destinations[0].settings.scripts is required (an array of script descriptors)",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x", "src": "/a.js", "sirc": 1}]}}]}"#,
            "unknown option config.destinations[0].settings.scripts[0].sirc",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x", "src": "/a.js"}, {"id": "x", "src": "/b.js"}]}}]}"#,
            "config.destinations[0].settings.scripts[1].id duplicates another script: x",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x", "src": "/a.js", "requiredConsent": []}]}}]}"#,
            "unknown option config.destinations[0].settings.scripts[0].requiredConsent (set requiredConsent on the destination)",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x", "src": "/a.js", "target": "footer"}]}}]}"#,
            "config.destinations[0].settings.scripts[0].target must be 'head' or 'body'",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x", "src": "/a.js", "async": "yes"}]}}]}"#,
            "config.destinations[0].settings.scripts[0].async must be a boolean",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"src": "/a.js"}]}}]}"#,
            "config.destinations[0].settings.scripts[0].id is required (a non-empty string)",
        ),
        (
            r#"{"destinations": [{"type": "script", "settings": {"scripts": [{"id": "x"}]}}]}"#,
            "config.destinations[0].settings.scripts[0] needs exactly one of src and textContent",
        ),
    ])
    .await;
}

#[wasm_bindgen_test]
fn consent_objects_and_purpose_lists_name_the_field() {
    assert_eq!(
        parse_consent_object(&obj(r#"{"ads": true}"#), "setConsent").unwrap_err(),
        "unknown consent purpose setConsent.ads (expected necessary, functionality, experience, measurement, marketing)"
    );
    assert_eq!(
        parse_consent_object(&obj("[]"), "setConsent").unwrap_err(),
        "setConsent must be an object of purpose: boolean"
    );
    assert_eq!(
        parse_consent_object(&obj(r#"{"measurement": 1}"#), "setConsent").unwrap_err(),
        "setConsent.measurement must be a boolean"
    );
    assert_eq!(
        parse_consent_object(&obj(r#"{"measurement": true, "marketing": false}"#), "c")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        parse_purpose_list(&obj(r#"["measurement", "x"]"#), "r").unwrap_err(),
        "r[1] is not a consent purpose: x"
    );
    assert!(parse_descriptor(&obj("1"), "p", false)
        .unwrap_err()
        .contains("p must be a script descriptor object"));
}

#[wasm_bindgen_test]
async fn relay_settings_that_cannot_work_are_refused() {
    refused(&[
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": ""}}]}"#,
            "config.destinations[0].settings.endpoint must be an http(s) URL, got ''",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "  "}}]}"#,
            "config.destinations[0].settings.endpoint must be an http(s) URL, got '  '",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "http://[::1/e"}}]}"#,
            "config.destinations[0].settings.endpoint must be an http(s) URL, got 'http://[::1/e'",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"X Site": "a"}}}]}"#,
            "config.destinations[0].settings.headers.X Site is not a valid header name (an HTTP token)",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"": "a"}}}]}"#,
            "config.destinations[0].settings.headers. is not a valid header name (an HTTP token)",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"X-Site": "a\r\nSet-Cookie: x"}}}]}"#,
            "config.destinations[0].settings.headers.X-Site must not contain CR, LF, NUL or a character beyond U+00FF",
        ),
        (
            r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"X-Site": "a\u0000"}}}]}"#,
            "config.destinations[0].settings.headers.X-Site must not contain CR, LF, NUL or a character beyond U+00FF",
        ),
    ])
    .await;
    // A relative endpoint resolves against the document, as fetch resolves it, and loads.
    let ok = r#"{"destinations": [{"type": "relay", "settings": {"endpoint": "/e", "headers": {"X-Site_1.a~": "a b\té"}}}]}"#;
    assert_eq!(load_error(obj(ok)).await, None);
}

#[wasm_bindgen_test]
async fn a_zero_load_timeout_and_a_colliding_dead_letter_key_are_refused() {
    refused(&[
        (
            r#"{"loading": {"timeoutMs": 0}}"#,
            "config.loading.timeoutMs must be at least 1",
        ),
        (
            r#"{"deadLetter": {"storageKey": "consent-analytics:anonymousId"}}"#,
            "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got 'consent-analytics:anonymousId'",
        ),
        (
            r#"{"storagePrefix": "p", "deadLetter": {"storageKey": "p:userId"}}"#,
            "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got 'p:userId'",
        ),
        (
            r#"{"storagePrefix": "p", "deadLetter": {"storageKey": "p:traits"}}"#,
            "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got 'p:traits'",
        ),
        (
            r#"{"storagePrefix": "p", "deadLetter": {"storageKey": "p:outbox:relay:x"}}"#,
            "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got 'p:outbox:relay:x'",
        ),
        (
            r#"{"storagePrefix": "p", "deadLetter": {"storageKey": "p:scripts:x"}}"#,
            "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got 'p:scripts:x'",
        ),
    ])
    .await;
    // Another client's identity key is not this client's.
    let other = r#"{"storagePrefix": "p", "deadLetter": {"storageKey": "q:anonymousId"}}"#;
    assert_eq!(load_error(obj(other)).await, None);
}

#[wasm_bindgen_test]
async fn a_config_that_throws_when_read_is_refused_naming_the_field() {
    assert_eq!(
        load_error(throwing_getter()).await.as_deref(),
        Some("config.destinations: value could not be read: x")
    );
    assert_eq!(
        load_error(throwing_settings_getter()).await.as_deref(),
        Some("config.destinations[0].settings.endpoint: value could not be read: y")
    );
    assert_eq!(
        load_error(throwing_proxy()).await.as_deref(),
        Some("config: value could not be read: trap")
    );
}

#[wasm_bindgen_test]
async fn dead_letters_are_stored_under_the_storage_prefix() {
    clear_storage();
    let cfg = obj(
        r#"{"storagePrefix": "cfg-dlq", "retry": {"maxRetries": 0}, "destinations": [{"type": "relay", "settings": {"endpoint": "/nowhere-404"}}]}"#,
    );
    let a = JsFuture::from(Analytics::load_promise(cfg)).await.unwrap();
    let a = <Analytics as wasm_bindgen::convert::TryFromJsValue>::try_from_js_value(a).unwrap();
    a.track("x".into(), JsValue::UNDEFINED, JsValue::UNDEFINED)
        .unwrap();
    JsFuture::from(a.flush()).await.unwrap();
    let stored = JsFuture::from(stored_key("cfg-dlq:dlq")).await.unwrap();
    let keys: Vec<String> = stored_keys().iter().filter_map(|k| k.as_string()).collect();
    assert_eq!(stored.as_bool(), Some(true), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k == "consent-analytics:dlq"),
        "{keys:?}"
    );
}

#[wasm_bindgen_test]
async fn a_javascript_type_receives_the_page_own_settings_object() {
    let seen = js_sys::Array::new();
    let f = seen.clone();
    let factory = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |settings: JsValue| {
        f.push(&settings);
        js_sys::Object::new().into()
    });
    let factory: js_sys::Function = factory.into_js_value().unchecked_into();
    Analytics::register_destination("cfg-same".into(), factory.into()).unwrap();
    let both = same_object_config("cfg-same");
    let settings = Reflect::get(&both, &"settings".into()).unwrap();
    let config = Reflect::get(&both, &"config".into()).unwrap();
    assert_eq!(load_error(config).await, None);
    assert_eq!(seen.length(), 1);
    assert!(
        js_sys::Object::is(&seen.get(0), &settings),
        "the same object"
    );
}
