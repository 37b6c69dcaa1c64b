//! Timers for the web layer: gloo-timers' `Timeout`, which clears its `setTimeout` when
//! dropped, so cancelling a timer is dropping it.

use gloo_timers::callback::Timeout;

/// Runs `f` after `ms` milliseconds unless the returned timer is dropped first. Delays beyond
/// what `setTimeout` takes (2^31 - 1 ms, about 24.8 days) are clamped to it rather than
/// wrapping round to fire at once.
pub fn after(ms: u64, f: impl FnOnce() + 'static) -> Timeout {
    Timeout::new(ms.min(i32::MAX as u64) as u32, f)
}
