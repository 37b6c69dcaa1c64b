//! The structured results the page reads (`status()`, `deadLetters()`, `retryDeadLetters()`,
//! the `error` and `dead-letter` listener payloads), as serde types turned into JavaScript
//! values by serde-wasm-bindgen. Their field names and types are those of the `.d.ts` in
//! `types.rs`.
//!
//! Every value goes through [`to_js`], serde-wasm-bindgen's JSON-compatible serializer: a
//! `None` is `null` (`lastError`), an optional field that must be absent when unknown says so
//! with `skip_serializing_if` (`error.status`), and numbers are plain numbers.

use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::dead_letter::DeadLetter;
use crate::error::{DeliveryError, ErrorKind};
use crate::manager::DestStatus;

/// `value` as a plain JavaScript value (objects, arrays, strings, numbers, `null`).
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // Serialising these types only fails for an integer beyond 2^53 (no count or timestamp
    // gets there); `null` then stands for the value rather than a panic.
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or(JsValue::NULL)
}

/// A failure as the page sees it: `{ kind, message, status? }`.
#[derive(Serialize)]
pub struct ErrorInfo<'a> {
    /// Its class (`server`, `network`, ...).
    pub kind: ErrorKind,
    /// A human-readable description.
    pub message: &'a str,
    /// The HTTP status, only for HTTP failures (absent otherwise, not `undefined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl<'a> From<&'a DeliveryError> for ErrorInfo<'a> {
    fn from(e: &'a DeliveryError) -> Self {
        ErrorInfo {
            kind: e.kind,
            message: &e.message,
            status: e.status,
        }
    }
}

/// A dead letter as the page sees it (`deadLetters()`, the `dead-letter` listener).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterInfo<'a> {
    /// The entry's id.
    pub id: &'a str,
    /// The destination the event failed to reach.
    pub destination: &'a str,
    /// The event: `JSON.parse` of the stored JSON (`null` if it does not parse), passed through
    /// as the JavaScript value it already is.
    #[serde(serialize_with = "serde_wasm_bindgen::preserve::serialize")]
    pub event: JsValue,
    /// The last failure.
    pub error: ErrorInfo<'a>,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When the first attempt failed, in ms since the epoch.
    pub first_failed_at: u64,
    /// When the last attempt failed, in ms since the epoch.
    pub last_failed_at: u64,
}

impl<'a> From<&'a DeadLetter> for DeadLetterInfo<'a> {
    fn from(d: &'a DeadLetter) -> Self {
        DeadLetterInfo {
            id: &d.id,
            destination: &d.destination,
            event: js_sys::JSON::parse(&d.event_json).unwrap_or(JsValue::NULL),
            error: ErrorInfo {
                kind: d.kind,
                message: &d.message,
                status: d.status,
            },
            attempts: d.attempts,
            first_failed_at: d.first_failed_at,
            last_failed_at: d.last_failed_at,
        }
    }
}

/// One entry of `status()`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo<'a> {
    /// The destination id.
    pub id: &'a str,
    /// The destination type (`relay`, `ga4`, a registered JavaScript type, ...).
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Its load state.
    pub state: &'static str,
    /// Its circuit breaker state.
    pub circuit: &'static str,
    /// Events delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Events the destination skipped (`onBeforeEvent` returned null).
    pub skipped: u64,
    /// Events waiting (buffered, queued or in flight).
    pub pending: usize,
    /// The most recent error, or `null`.
    pub last_error: Option<ErrorInfo<'a>>,
}

impl<'a> StatusInfo<'a> {
    /// The status of a destination of type `kind`.
    pub fn new(s: &'a DestStatus, kind: &'a str) -> Self {
        StatusInfo {
            id: &s.id,
            kind,
            state: s.state.name(),
            circuit: s.circuit.name(),
            delivered: s.delivered,
            failed: s.failed,
            dead_lettered: s.dead_lettered,
            skipped: s.skipped,
            pending: s.pending,
            last_error: s.last_error.as_ref().map(ErrorInfo::from),
        }
    }
}

/// What `retryDeadLetters()` resolves to.
#[derive(Serialize)]
pub struct RetryResult {
    /// Dead letters taken for replay (those kept for a missing consent included).
    pub retried: u32,
    /// Replays delivered.
    pub succeeded: u32,
    /// Replays that failed (back in the queue).
    pub failed: u32,
}

/// The error as `{ kind, message, status? }`.
pub fn error_object(e: &DeliveryError) -> JsValue {
    to_js(&ErrorInfo::from(e))
}

/// A dead letter as the page sees it.
pub fn dead_letter_object(d: &DeadLetter) -> JsValue {
    to_js(&DeadLetterInfo::from(d))
}
