//! Delivery failures, classified from structured facts (HTTP status, a failed fetch, a timeout,
//! a script that did not load, a JavaScript hook that threw), never from message text.

use serde::{Deserialize, Serialize};

/// The error kinds' names, in declaration order.
const NAMES: [&str; 8] = [
    "rate_limit",
    "server",
    "auth",
    "validation",
    "network",
    "timeout",
    "script_load",
    "unknown",
];

/// The class of a delivery failure; decides whether it is retried. Its serde form is its
/// [`name`](ErrorKind::name), in stored dead letters and in the objects the page reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// HTTP 429.
    RateLimit,
    /// HTTP 408 or 5xx.
    Server,
    /// HTTP 401 or 403; not retried.
    Auth,
    /// Any other HTTP 4xx; not retried.
    Validation,
    /// The request never got an HTTP answer.
    Network,
    /// No answer within the time limit.
    Timeout,
    /// A script failed to load or timed out.
    ScriptLoad,
    /// A JavaScript destination threw or rejected.
    Unknown,
}

impl ErrorKind {
    /// The `error.kind` string seen by JavaScript.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    /// Parses a kind name (for dead letters persisted by earlier releases).
    pub fn from_name(s: &str) -> Option<ErrorKind> {
        const ALL: [ErrorKind; 8] = [
            ErrorKind::RateLimit,
            ErrorKind::Server,
            ErrorKind::Auth,
            ErrorKind::Validation,
            ErrorKind::Network,
            ErrorKind::Timeout,
            ErrorKind::ScriptLoad,
            ErrorKind::Unknown,
        ];
        NAMES.iter().position(|n| *n == s).map(|i| ALL[i])
    }

    /// The class of a non-2xx HTTP status.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            429 => ErrorKind::RateLimit,
            408 | 500..=599 => ErrorKind::Server,
            401 | 403 => ErrorKind::Auth,
            _ => ErrorKind::Validation,
        }
    }

    /// Whether a failure of this class is worth another attempt.
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorKind::Auth | ErrorKind::Validation)
    }
}

/// One failed delivery or load.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryError {
    /// Its class.
    pub kind: ErrorKind,
    /// A human-readable description (never parsed).
    pub message: String,
    /// The HTTP status, for HTTP failures.
    pub status: Option<u16>,
    /// A server-requested delay before the next attempt (from `Retry-After`), in ms.
    pub retry_after_ms: Option<u64>,
}

impl DeliveryError {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DeliveryError {
            kind,
            message: message.into(),
            status: None,
            retry_after_ms: None,
        }
    }

    /// A failure from a non-2xx HTTP answer.
    pub fn http(status: u16, retry_after_ms: Option<u64>) -> Self {
        let message = ["HTTP ", &status.to_string()].concat();
        DeliveryError {
            kind: ErrorKind::from_status(status),
            message,
            status: Some(status),
            retry_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_as_specified() {
        assert_eq!(ErrorKind::from_status(429), ErrorKind::RateLimit);
        assert_eq!(ErrorKind::from_status(408), ErrorKind::Server);
        assert_eq!(ErrorKind::from_status(503), ErrorKind::Server);
        assert_eq!(ErrorKind::from_status(401), ErrorKind::Auth);
        assert_eq!(ErrorKind::from_status(403), ErrorKind::Auth);
        assert_eq!(ErrorKind::from_status(400), ErrorKind::Validation);
        assert_eq!(ErrorKind::from_status(404), ErrorKind::Validation);
    }

    #[test]
    fn validation_and_auth_are_not_retried() {
        assert!(!ErrorKind::Auth.retryable());
        assert!(!ErrorKind::Validation.retryable());
        for k in [
            ErrorKind::RateLimit,
            ErrorKind::Server,
            ErrorKind::Network,
            ErrorKind::Timeout,
            ErrorKind::ScriptLoad,
            ErrorKind::Unknown,
        ] {
            assert!(k.retryable());
        }
    }

    #[test]
    fn names_round_trip() {
        let kinds = [
            (ErrorKind::RateLimit, "rate_limit"),
            (ErrorKind::Server, "server"),
            (ErrorKind::Auth, "auth"),
            (ErrorKind::Validation, "validation"),
            (ErrorKind::Network, "network"),
            (ErrorKind::Timeout, "timeout"),
            (ErrorKind::ScriptLoad, "script_load"),
            (ErrorKind::Unknown, "unknown"),
        ];
        for (k, name) in kinds {
            assert_eq!(k.name(), name);
            assert_eq!(ErrorKind::from_name(name), Some(k));
            let quoted = ["\"", name, "\""].concat();
            assert_eq!(serde_json::to_string(&k).unwrap(), quoted);
            assert_eq!(serde_json::from_str::<ErrorKind>(&quoted).unwrap(), k);
        }
        assert_eq!(ErrorKind::from_name("Server"), None);
    }

    #[test]
    fn http_error_carries_status() {
        let e = DeliveryError::http(503, Some(2000));
        assert_eq!(e.kind, ErrorKind::Server);
        assert_eq!(e.status, Some(503));
        assert_eq!(e.message, "HTTP 503");
    }
}
