//! Per-destination circuit breaker.
