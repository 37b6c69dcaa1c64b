//! TEMP stub
#![allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub recovery_timeout_ms: u64,
    pub half_open_successes: u32,
}
impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout_ms: 30000,
            half_open_successes: 3,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}
impl BreakerState {
    pub fn name(self) -> &'static str {
        "closed"
    }
}
pub struct CircuitBreaker {
    c: BreakerConfig,
}
impl CircuitBreaker {
    pub fn new(c: BreakerConfig) -> Self {
        CircuitBreaker { c }
    }
    pub fn state(&self, _now: u64) -> BreakerState {
        let _ = self.c;
        BreakerState::Closed
    }
    pub fn try_acquire(&mut self, _now: u64) -> bool {
        true
    }
    pub fn on_success(&mut self, _now: u64) {}
    pub fn on_failure(&mut self, _now: u64) {}
    pub fn next_attempt_at(&self) -> Option<u64> {
        None
    }
    pub fn force_half_open(&mut self) {}
    pub fn release(&mut self) {}
}
