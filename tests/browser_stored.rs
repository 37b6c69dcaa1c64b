//! Stored records in real Chromium: the browser's JSON through serde writes the same text
//! serde_json writes natively (the native tests pin that text), reads it back, and refuses
//! foreign values; an outbox entry's event comes back as the text `JSON.stringify` made.
#![cfg(target_arch = "wasm32")]

use consent_analytics::dead_letter::DeadLetter;
use consent_analytics::error::ErrorKind;
use consent_analytics::outbox::{decode_value, encode_value};
use consent_analytics::scripts_cache::CachedScripts;
use consent_analytics::stored::{from_str, quoted, to_string};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn letter() -> DeadLetter {
    DeadLetter {
        id: "dl-1".into(),
        destination: "relay".into(),
        event_json: r#"{"type":"track","event":"A \"q\""}"#.into(),
        kind: ErrorKind::Server,
        message: "HTTP 503".into(),
        status: Some(503),
        attempts: 4,
        first_failed_at: 1_765_000_000_000,
        last_failed_at: 1_765_000_001_234,
    }
}

#[wasm_bindgen_test]
fn a_dead_letter_is_written_as_serde_json_writes_it_and_read_back() {
    let text = to_string(&letter()).unwrap();
    assert_eq!(
        text,
        r#"{"id":"dl-1","destination":"relay","event":"{\"type\":\"track\",\"event\":\"A \\\"q\\\"\"}","kind":"server","message":"HTTP 503","status":503,"attempts":4,"firstFailedAt":1765000000000,"lastFailedAt":1765000001234}"#
    );
    assert_eq!(from_str::<DeadLetter>(&text), Some(letter()));
    let mut no_status = letter();
    no_status.status = None;
    let text = to_string(&no_status).unwrap();
    assert!(!text.contains("status"), "{text}");
    assert_eq!(from_str::<DeadLetter>(&text), Some(no_status));
}

#[wasm_bindgen_test]
fn foreign_or_corrupt_values_are_none() {
    let good = to_string(&letter()).unwrap();
    for bad in [
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        good.replace(r#""attempts":4"#, r#""attempts":-4"#),
        good.replace(r#""attempts":4"#, r#""attempts":4.5"#),
        good.replace(r#""kind":"server""#, r#""kind":"nope""#),
        good.replace(r#""id":"dl-1","#, r#""id":"dl-1","extra":1,"#),
        good.replace(r#""status":503"#, r#""status":70000"#),
    ] {
        assert_eq!(from_str::<DeadLetter>(&bad), None, "{bad}");
    }
    assert_eq!(
        from_str::<CachedScripts>(r#"{"v":1,"fetchedAt":5}"#).map(|c| c.v),
        None
    );
    let cached: CachedScripts = from_str(r#"{"v":1,"fetchedAt":5,"body":"[]"}"#).unwrap();
    assert_eq!((cached.fetched_at, cached.body.as_str()), (5, "[]"));
}

#[wasm_bindgen_test]
fn an_outbox_entry_round_trips_with_its_event_text() {
    let id = "a\"b\\c\nd\u{1}é";
    let event =
        r#"{"type":"track","properties":{"s":"é \"x\"","n":[1,2.5,null],"__proto__":{"a":1}}}"#;
    let stored = encode_value(id, event);
    assert_eq!(
        decode_value(&stored),
        Some((id.to_string(), event.to_string()))
    );
    assert_eq!(decode_value(r#"{"v":1,"id":"m","event":[]}"#), None);
    assert_eq!(decode_value(r#"{"v":2,"id":"m","event":{}}"#), None);
    assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
}
