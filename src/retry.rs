//! Retry policy: exponential backoff with full jitter and `Retry-After`.
