//! Per-destination circuit breaker.
//!
//! Closed: deliveries flow and consecutive failures are counted; at the threshold it opens.
//! Open: nothing is attempted until the recovery timeout passes; then it is half-open and lets
//! one trial delivery through at a time. Enough consecutive trial successes close it; a trial
//! failure reopens it with a fresh timeout. Time is passed in (`now_ms`), never read.

/// Circuit breaker settings (`circuitBreaker` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long an open breaker blocks deliveries before allowing a trial, in ms.
    pub recovery_timeout_ms: u64,
    /// Consecutive trial successes that close a half-open breaker.
    pub half_open_successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout_ms: 30_000,
            half_open_successes: 3,
        }
    }
}

/// The state of a breaker as reported to pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries flow normally.
    Closed,
    /// Deliveries are held until the recovery timeout passes.
    Open,
    /// Trial deliveries, one at a time, decide whether to close or reopen.
    HalfOpen,
}

impl BreakerState {
    /// The state's name as seen by JavaScript.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
    },
    HalfOpen {
        successes: u32,
        trial_in_flight: bool,
    },
}

/// One destination's circuit breaker: decides whether a delivery may be attempted now.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
}

impl CircuitBreaker {
    /// A closed breaker with `config`.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now_ms`; an open breaker whose recovery timeout has passed reports
    /// half-open even before the next [`try_acquire`](Self::try_acquire).
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until_ms } if now_ms < until_ms => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a delivery may be attempted now. In half-open state a `true` takes the single
    /// trial slot, which the caller frees with `on_success`, `on_failure` or `release`.
    pub fn try_acquire(&mut self, now_ms: u64) -> bool {
        match &mut self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until_ms } => {
                if now_ms < *until_ms {
                    return false;
                }
                self.inner = Inner::HalfOpen {
                    successes: 0,
                    trial_in_flight: true,
                };
                true
            }
            Inner::HalfOpen {
                trial_in_flight, ..
            } => !std::mem::replace(trial_in_flight, true),
        }
    }

    /// Records a successful delivery: resets the failure count when closed, counts towards
    /// closing when half-open. A late success while open is ignored.
    pub fn on_success(&mut self, _now_ms: u64) {
        match &mut self.inner {
            Inner::Closed { failures } => *failures = 0,
            Inner::Open { .. } => {}
            Inner::HalfOpen {
                successes,
                trial_in_flight,
            } => {
                *trial_in_flight = false;
                *successes = successes.saturating_add(1);
                if *successes >= self.config.half_open_successes {
                    self.inner = Inner::Closed { failures: 0 };
                }
            }
        }
    }

    /// Records a failed delivery: counts it when closed (opening at the threshold), reopens at
    /// once when half-open. A late failure while open does not extend the timeout.
    pub fn on_failure(&mut self, now_ms: u64) {
        match &mut self.inner {
            Inner::Closed { failures } => {
                *failures = failures.saturating_add(1);
                if *failures >= self.config.failure_threshold {
                    self.open(now_ms);
                }
            }
            Inner::Open { .. } => {}
            Inner::HalfOpen { .. } => self.open(now_ms),
        }
    }

    /// When an open breaker will allow a trial (to schedule a wake-up); `None` unless open.
    pub fn next_attempt_at(&self) -> Option<u64> {
        match self.inner {
            Inner::Open { until_ms } => Some(until_ms),
            _ => None,
        }
    }

    /// A user asked to retry now: an open breaker turns half-open so the next `try_acquire`
    /// gets a trial. Closed or half-open breakers are left as they are.
    pub fn force_half_open(&mut self) {
        if let Inner::Open { .. } = self.inner {
            self.inner = Inner::HalfOpen {
                successes: 0,
                trial_in_flight: false,
            };
        }
    }

    /// A trial ended without a verdict (e.g. the page went offline): frees the trial slot and
    /// counts nothing.
    pub fn release(&mut self) {
        if let Inner::HalfOpen {
            trial_in_flight, ..
        } = &mut self.inner
        {
            *trial_in_flight = false;
        }
    }

    fn open(&mut self, now_ms: u64) {
        self.inner = Inner::Open {
            until_ms: now_ms.saturating_add(self.config.recovery_timeout_ms),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::default())
    }

    /// A breaker opened at `at` by five consecutive failures.
    fn opened_at(at: u64) -> CircuitBreaker {
        let mut b = breaker();
        for _ in 0..5 {
            assert!(b.try_acquire(at));
            b.on_failure(at);
        }
        assert_eq!(b.state(at), BreakerState::Open);
        b
    }

    #[test]
    fn default_matches_spec_and_starts_closed() {
        assert_eq!(
            BreakerConfig::default(),
            BreakerConfig {
                failure_threshold: 5,
                recovery_timeout_ms: 30_000,
                half_open_successes: 3
            }
        );
        let mut b = breaker();
        assert_eq!(b.state(T0), BreakerState::Closed);
        assert!(b.try_acquire(T0));
        assert!(b.try_acquire(T0), "closed allows concurrent deliveries");
        assert_eq!(b.next_attempt_at(), None);
    }

    #[test]
    fn state_names_are_the_js_strings() {
        assert_eq!(BreakerState::Closed.name(), "closed");
        assert_eq!(BreakerState::Open.name(), "open");
        assert_eq!(BreakerState::HalfOpen.name(), "half_open");
    }

    #[test]
    fn opens_at_exactly_the_failure_threshold() {
        let mut b = breaker();
        for i in 0..4 {
            b.on_failure(T0 + i);
            assert_eq!(
                b.state(T0 + i),
                BreakerState::Closed,
                "after {} failures",
                i + 1
            );
        }
        b.on_failure(T0 + 4);
        assert_eq!(b.state(T0 + 4), BreakerState::Open);
        assert_eq!(b.next_attempt_at(), Some(T0 + 4 + 30_000));
        assert!(!b.try_acquire(T0 + 5));
    }

    #[test]
    fn a_success_resets_the_consecutive_failure_count() {
        let mut b = breaker();
        for round in 0..10 {
            for _ in 0..4 {
                b.on_failure(T0 + round);
            }
            b.on_success(T0 + round);
        }
        assert_eq!(b.state(T0 + 10), BreakerState::Closed);
    }

    #[test]
    fn open_blocks_until_the_recovery_timeout_then_reports_half_open() {
        let mut b = opened_at(T0);
        assert!(!b.try_acquire(T0 + 29_999));
        assert_eq!(b.state(T0 + 29_999), BreakerState::Open);
        assert_eq!(b.state(T0 + 30_000), BreakerState::HalfOpen);
        assert!(b.try_acquire(T0 + 30_000));
        assert_eq!(b.state(T0 + 30_000), BreakerState::HalfOpen);
        assert_eq!(b.next_attempt_at(), None);
    }

    #[test]
    fn half_open_allows_one_trial_at_a_time() {
        let mut b = opened_at(T0);
        let t = T0 + 30_000;
        assert!(b.try_acquire(t));
        assert!(!b.try_acquire(t), "second trial while one is in flight");
        assert!(!b.try_acquire(t + 100_000));
        b.on_success(t + 1);
        assert!(b.try_acquire(t + 2), "slot free again after a verdict");
        assert!(!b.try_acquire(t + 2));
    }

    #[test]
    fn configured_trial_successes_close_the_breaker() {
        let mut b = opened_at(T0);
        let t = T0 + 30_000;
        for i in 0..2 {
            assert!(b.try_acquire(t + i));
            b.on_success(t + i);
            assert_eq!(b.state(t + i), BreakerState::HalfOpen);
        }
        assert!(b.try_acquire(t + 2));
        b.on_success(t + 2);
        assert_eq!(b.state(t + 2), BreakerState::Closed);
        // Closed again with a fresh count: four failures do not reopen it.
        for _ in 0..4 {
            b.on_failure(t + 3);
        }
        assert_eq!(b.state(t + 3), BreakerState::Closed);
    }

    #[test]
    fn a_half_open_failure_reopens_with_a_fresh_timeout() {
        let mut b = opened_at(T0);
        let t = T0 + 45_000;
        assert!(b.try_acquire(t));
        b.on_success(t);
        assert!(b.try_acquire(t + 10));
        b.on_failure(t + 10);
        assert_eq!(b.state(t + 10), BreakerState::Open);
        assert_eq!(b.next_attempt_at(), Some(t + 10 + 30_000));
        assert!(!b.try_acquire(t + 30_009));
        assert!(b.try_acquire(t + 30_010));
        // The earlier trial success does not carry over: three more are needed.
        b.on_success(t + 30_011);
        assert!(b.try_acquire(t + 30_012));
        b.on_success(t + 30_012);
        assert_eq!(b.state(t + 30_012), BreakerState::HalfOpen);
    }

    #[test]
    fn late_verdicts_while_open_change_nothing() {
        let mut b = opened_at(T0);
        b.on_failure(T0 + 10_000);
        assert_eq!(b.next_attempt_at(), Some(T0 + 30_000));
        b.on_success(T0 + 10_000);
        assert_eq!(b.state(T0 + 10_000), BreakerState::Open);
    }

    #[test]
    fn force_half_open_grants_a_trial_before_the_timeout() {
        let mut b = opened_at(T0);
        b.force_half_open();
        assert_eq!(b.state(T0 + 1), BreakerState::HalfOpen);
        assert!(b.try_acquire(T0 + 1));
        assert!(!b.try_acquire(T0 + 1));
        b.on_failure(T0 + 2);
        assert_eq!(b.next_attempt_at(), Some(T0 + 2 + 30_000));
    }

    #[test]
    fn force_half_open_leaves_closed_and_half_open_breakers_alone() {
        let mut b = breaker();
        b.force_half_open();
        assert_eq!(b.state(T0), BreakerState::Closed);
        let mut b = opened_at(T0);
        assert!(b.try_acquire(T0 + 30_000));
        b.force_half_open();
        assert!(!b.try_acquire(T0 + 30_000), "still one trial at a time");
    }

    #[test]
    fn release_frees_the_trial_slot_without_counting() {
        let mut b = opened_at(T0);
        let t = T0 + 30_000;
        assert!(b.try_acquire(t));
        b.release();
        assert_eq!(b.state(t), BreakerState::HalfOpen);
        assert!(b.try_acquire(t));
        b.on_success(t);
        assert!(b.try_acquire(t));
        b.release();
        assert!(b.try_acquire(t));
        b.on_success(t);
        assert!(b.try_acquire(t));
        b.on_success(t);
        assert_eq!(
            b.state(t),
            BreakerState::Closed,
            "released trials did not count"
        );
        // Release on a closed breaker is a no-op.
        b.release();
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn a_threshold_of_one_opens_on_the_first_failure() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            recovery_timeout_ms: 10,
            half_open_successes: 1,
        });
        b.on_failure(0);
        assert!(!b.try_acquire(9));
        assert!(b.try_acquire(10));
        b.on_success(11);
        assert_eq!(b.state(11), BreakerState::Closed);
    }
}
