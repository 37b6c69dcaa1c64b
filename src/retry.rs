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
