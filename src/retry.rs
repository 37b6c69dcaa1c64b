//! TEMP stub
#![allow(missing_docs)]
use crate::error::DeliveryError;
use crate::ports::Rng;
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub multiplier: f64,
    pub jitter: bool,
}
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay_ms: 1000,
            max_delay_ms: 30000,
            multiplier: 2.0,
            jitter: true,
        }
    }
}
impl RetryPolicy {
    pub fn should_retry(&self, err: &DeliveryError, attempts_made: u32) -> bool {
        err.kind.retryable() && attempts_made <= self.max_retries
    }
    pub fn delay_ms(&self, n: u32, ra: Option<u64>, rng: &mut dyn Rng) -> u64 {
        let _ = rng;
        ra.unwrap_or(self.base_delay_ms * n as u64)
            .min(self.max_delay_ms)
    }
}
/// `Retry-After` as a delay in ms (delta-seconds only in this stub; HTTP dates give `None`).
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let _ = now_ms;
    let v = value.trim();
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000))
}
