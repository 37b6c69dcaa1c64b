//! Stored records (outbox entries, dead letters, the remote-scripts cache) to and from the text
//! kept in storage, through serde on every target. In the browser the text is the browser's own
//! JSON: `JSON.parse`, read into the record by the web layer's JavaScript-value deserializer
//! (the configuration's), and serde-wasm-bindgen then `JSON.stringify` to write. Natively (the
//! deciding logic's tests) serde_json reads and writes the same text. One serde data model and
//! the same record types either way; the wasm carries no second JSON parser.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

/// `text` read as a `T`; `None` when it is not JSON or not a `T` (a foreign or corrupt value).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    #[cfg(target_arch = "wasm32")]
    {
        let value = js_sys::JSON::parse(text).ok()?;
        crate::web::config::de::from_value(&value, "stored value").ok()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        serde_json::from_str(text).ok()
    }
}

/// `value` as JSON text; `None` if it cannot be serialised (a record always can).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let value = value
            .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .ok()?;
        js_sys::JSON::stringify(&value).ok()?.as_string()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        serde_json::to_string(value).ok()
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn quoted(s: &str) -> String {
    to_string(s).unwrap_or_default()
}

/// A JSON value kept as its text (an outbox entry's event), read from a record as the text of
/// that value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(pub String);

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[cfg(target_arch = "wasm32")]
        {
            use serde::de::Error;
            // The value JSON.parse made, written back by JSON.stringify: the same text for
            // what JSON.stringify wrote in the first place.
            let value: wasm_bindgen::JsValue = serde_wasm_bindgen::preserve::deserialize(d)?;
            js_sys::JSON::stringify(&value)
                .ok()
                .and_then(|s| s.as_string())
                .map(RawJson)
                .ok_or_else(|| D::Error::custom("not a JSON value"))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            // The exact bytes stored.
            let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
            Ok(RawJson(raw.get().to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Record {
        v: u32,
        first_at: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    }

    #[test]
    fn records_round_trip_and_foreign_text_is_none() {
        let r = Record {
            v: 1,
            first_at: 1_765_000_000_000,
            status: None,
        };
        let text = to_string(&r).unwrap();
        assert_eq!(text, r#"{"v":1,"firstAt":1765000000000}"#);
        assert_eq!(from_str::<Record>(&text), Some(r));
        for bad in [
            "",
            "[]",
            "{",
            r#"{"v":1,"firstAt":2,"x":0}"#,
            r#"{"v":-1,"firstAt":2}"#,
        ] {
            assert_eq!(from_str::<Record>(bad), None, "{bad}");
        }
        assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
    }

    #[test]
    fn raw_json_keeps_the_text_of_the_value() {
        #[derive(Deserialize)]
        struct Holder {
            event: RawJson,
        }
        let h: Holder = from_str(r#"{"event":{"a":[1,"}"]}}"#).unwrap();
        assert_eq!(h.event, RawJson(r#"{"a":[1,"}"]}"#.into()));
    }
}
