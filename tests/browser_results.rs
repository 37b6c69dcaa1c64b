//! The structured results in real Chromium: what serde-wasm-bindgen makes of the error, dead
//! letter, status and retry result types is exactly the objects the `.d.ts` promises (field
//! names, `status` absent rather than undefined, `lastError` null, plain numbers, the event as
//! a parsed object).
#![cfg(target_arch = "wasm32")]

use consent_analytics::breaker::BreakerState;
use consent_analytics::dead_letter::DeadLetter;
use consent_analytics::error::{DeliveryError, ErrorKind};
use consent_analytics::manager::{DestStatus, LoadState};
use consent_analytics::web::results::{
    dead_letter_object, error_object, to_js, RetryResult, StatusInfo,
};
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `v` as JSON text, keys in their order: the shape a page sees.
fn json(v: &JsValue) -> String {
    JSON::stringify(v).unwrap().as_string().unwrap()
}

fn keys(v: &JsValue) -> Vec<String> {
    Object::keys(v.unchecked_ref::<Object>())
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect()
}

/// Whether `v` is an object made by `{}` (not a Map, not an instance of a class).
fn is_plain_object(v: &JsValue) -> bool {
    let plain: JsValue = Object::get_prototype_of(&Object::new()).into();
    v.is_object() && JsValue::from(Object::get_prototype_of(v)) == plain
}

fn letter(status: Option<u16>) -> DeadLetter {
    DeadLetter {
        id: "dl-1".into(),
        destination: "relay".into(),
        event_json: r#"{"type":"track","event":"Signed Up","properties":{"plan":"pro"}}"#.into(),
        kind: ErrorKind::Server,
        message: "HTTP 503".into(),
        status,
        attempts: 4,
        first_failed_at: 1_700_000_000_000,
        last_failed_at: 1_700_000_007_000,
    }
}

#[wasm_bindgen_test]
fn an_error_has_a_status_only_when_there_is_one() {
    let http = error_object(&DeliveryError::http(503, None));
    assert_eq!(
        json(&http),
        r#"{"kind":"server","message":"HTTP 503","status":503}"#
    );
    assert!(is_plain_object(&http));
    let thrown = error_object(&DeliveryError::new(ErrorKind::Unknown, "boom"));
    assert_eq!(keys(&thrown), ["kind", "message"]);
    assert!(!Reflect::has(thrown.unchecked_ref(), &"status".into()).unwrap());
}

#[wasm_bindgen_test]
fn a_dead_letter_carries_its_event_as_an_object_and_its_times_as_numbers() {
    let o = dead_letter_object(&letter(Some(503)));
    assert_eq!(
        json(&o),
        concat!(
            r#"{"id":"dl-1","destination":"relay","#,
            r#""event":{"type":"track","event":"Signed Up","properties":{"plan":"pro"}},"#,
            r#""error":{"kind":"server","message":"HTTP 503","status":503},"#,
            r#""attempts":4,"firstFailedAt":1700000000000,"lastFailedAt":1700000007000}"#
        )
    );
    let event = Reflect::get(&o, &"event".into()).unwrap();
    assert!(is_plain_object(&event));
    let at = Reflect::get(&o, &"firstFailedAt".into()).unwrap();
    assert_eq!(at.as_f64(), Some(1_700_000_000_000.0));

    let mut bad = letter(None);
    bad.event_json = "not json".into();
    let o = dead_letter_object(&bad);
    assert!(Reflect::get(&o, &"event".into()).unwrap().is_null());
    let error = Reflect::get(&o, &"error".into()).unwrap();
    assert_eq!(keys(&error), ["kind", "message"]);
}

#[wasm_bindgen_test]
fn a_status_entry_has_every_field_and_a_null_last_error() {
    let mut s = DestStatus {
        id: "ga4".into(),
        state: LoadState::Loaded,
        circuit: BreakerState::HalfOpen,
        delivered: 3,
        failed: 1,
        dead_lettered: 0,
        skipped: 0,
        pending: 2,
        last_error: None,
    };
    let list = to_js(&[StatusInfo::new(&s, "ga4")]);
    assert!(Array::is_array(&list));
    assert_eq!(
        json(&Array::from(&list).get(0)),
        concat!(
            r#"{"id":"ga4","type":"ga4","state":"loaded","circuit":"half_open","#,
            r#""delivered":3,"failed":1,"deadLettered":0,"skipped":0,"pending":2,"lastError":null}"#
        )
    );
    s.last_error = Some(DeliveryError::new(ErrorKind::Timeout, "timed out"));
    let o = to_js(&StatusInfo::new(&s, "ga4"));
    let e = Reflect::get(&o, &"lastError".into()).unwrap();
    assert_eq!(json(&e), r#"{"kind":"timeout","message":"timed out"}"#);
}

#[wasm_bindgen_test]
fn a_retry_result_is_three_counts() {
    let r = to_js(&RetryResult {
        retried: 3,
        succeeded: 2,
        failed: 1,
    });
    assert_eq!(json(&r), r#"{"retried":3,"succeeded":2,"failed":1}"#);
    assert!(is_plain_object(&r));
}
