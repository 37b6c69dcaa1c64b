//! Retry policy: exponential backoff with full jitter and `Retry-After`.
//!
//! Sans-IO: the policy only answers "retry?" and "after how long?"; the caller owns the timer.
//! Randomness comes from an injected [`Rng`] so jitter is deterministic in tests.

use crate::error::DeliveryError;
use crate::ports::Rng;

/// How failed deliveries are retried (`retry` in the config).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`1` means at most 2 attempts).
    pub max_retries: u32,
    /// The delay before the first retry, before jitter, in ms.
    pub base_delay_ms: u64,
    /// The upper bound of any delay, `Retry-After` included, in ms.
    pub max_delay_ms: u64,
    /// The growth factor of the delay from one retry to the next.
    pub multiplier: f64,
    /// Whether to draw each delay uniformly from `[0, cap]` ("full jitter").
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay_ms: 1000,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Whether a delivery that failed with `err` after `attempts_made` attempts (the first one
    /// included) deserves another attempt.
    pub fn should_retry(&self, err: &DeliveryError, attempts_made: u32) -> bool {
        err.kind.retryable() && attempts_made <= self.max_retries
    }

    /// The backoff ceiling for retry number `retry_number` (1 for the first retry):
    /// `min(max_delay, base * multiplier^(n-1))`, saturating.
    pub fn cap_ms(&self, retry_number: u32) -> u64 {
        let raw = self.base_delay_ms as f64
            * self
                .multiplier
                .powi(retry_number.saturating_sub(1).min(i32::MAX as u32) as i32);
        let max = self.max_delay_ms as f64;
        // NaN and infinity (a huge exponent) fall to the max; `as u64` saturates negatives to 0.
        if raw < max {
            (raw as u64).min(self.max_delay_ms)
        } else {
            self.max_delay_ms
        }
    }

    /// How long to wait before retry number `retry_number` (1 for the first retry). A server's
    /// `Retry-After` (in ms) wins over the computed backoff, capped at `max_delay_ms`.
    pub fn delay_ms(
        &self,
        retry_number: u32,
        retry_after_ms: Option<u64>,
        rng: &mut dyn Rng,
    ) -> u64 {
        if let Some(ms) = retry_after_ms {
            return ms.min(self.max_delay_ms);
        }
        let cap = self.cap_ms(retry_number);
        if !self.jitter {
            return cap;
        }
        // next_unit() is in [0, 1), so this lands in [0, cap] inclusive.
        let drawn = rng.next_unit() * (cap as f64 + 1.0);
        (drawn as u64).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::ports::SeededRng;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn default_matches_spec() {
        let p = RetryPolicy::default();
        assert_eq!(
            (p.max_retries, p.base_delay_ms, p.max_delay_ms, p.jitter),
            (3, 1000, 30_000, true)
        );
        assert!(p.multiplier == 2.0);
    }

    #[test]
    fn without_jitter_delay_doubles_then_saturates_at_max() {
        let p = no_jitter();
        let mut rng = SeededRng::new(1);
        let got: Vec<u64> = (1..=7).map(|n| p.delay_ms(n, None, &mut rng)).collect();
        assert_eq!(got, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    }

    #[test]
    fn huge_retry_numbers_and_odd_multipliers_do_not_overflow() {
        let mut p = no_jitter();
        let mut rng = SeededRng::new(1);
        assert_eq!(p.delay_ms(u32::MAX, None, &mut rng), 30_000);
        p.max_delay_ms = u64::MAX;
        assert_eq!(p.delay_ms(u32::MAX, None, &mut rng), u64::MAX);
        p.multiplier = f64::NAN;
        assert_eq!(p.cap_ms(3), u64::MAX);
        p.multiplier = -2.0;
        assert_eq!(p.cap_ms(2), 0);
        p.multiplier = 1.0;
        assert_eq!(p.cap_ms(u32::MAX), 1000);
        // Retry number 0 is treated as the first retry.
        assert_eq!(p.cap_ms(0), 1000);
    }

    #[test]
    fn jittered_delay_stays_within_zero_and_the_cap_for_every_retry_number() {
        let p = RetryPolicy::default();
        let mut rng = SeededRng::new(42);
        for n in 1..=40 {
            let cap = p.cap_ms(n);
            let expected = (1000u64 << (n - 1).min(20)).min(30_000);
            assert_eq!(cap, expected, "cap for retry {n}");
            for _ in 0..2000 {
                let d = p.delay_ms(n, None, &mut rng);
                assert!(d <= cap, "retry {n}: {d} > {cap}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays_across_the_whole_range() {
        let p = RetryPolicy::default();
        let mut rng = SeededRng::new(7);
        let draws: Vec<u64> = (0..1000).map(|_| p.delay_ms(3, None, &mut rng)).collect();
        let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        let mut distinct = draws.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 500,
            "only {} distinct values",
            distinct.len()
        );
        assert!(*min < 400 && *max > 3600, "range {min}..{max} too narrow");
        let mean = draws.iter().sum::<u64>() / 1000;
        assert!((1700..2300).contains(&mean), "mean {mean} far from cap/2");
    }

    #[test]
    fn same_seed_gives_same_jittered_delays() {
        let p = RetryPolicy::default();
        let (mut a, mut b) = (SeededRng::new(9), SeededRng::new(9));
        for n in 1..10 {
            assert_eq!(p.delay_ms(n, None, &mut a), p.delay_ms(n, None, &mut b));
        }
    }

    #[test]
    fn retry_after_wins_over_backoff_and_is_capped_at_max_delay() {
        let p = RetryPolicy::default();
        let mut rng = SeededRng::new(3);
        assert_eq!(p.delay_ms(1, Some(5000), &mut rng), 5000);
        assert_eq!(p.delay_ms(5, Some(0), &mut rng), 0);
        assert_eq!(p.delay_ms(1, Some(120_000), &mut rng), 30_000);
        assert_eq!(no_jitter().delay_ms(1, Some(7000), &mut rng), 7000);
    }

    #[test]
    fn retries_only_retryable_kinds() {
        let p = RetryPolicy::default();
        for (kind, retry) in [
            (ErrorKind::RateLimit, true),
            (ErrorKind::Server, true),
            (ErrorKind::Network, true),
            (ErrorKind::Timeout, true),
            (ErrorKind::ScriptLoad, true),
            (ErrorKind::Unknown, true),
            (ErrorKind::Auth, false),
            (ErrorKind::Validation, false),
        ] {
            assert_eq!(
                p.should_retry(&DeliveryError::new(kind, "x"), 1),
                retry,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn max_retries_counts_retries_after_the_first_attempt() {
        let err = DeliveryError::http(503, None);
        let one = RetryPolicy {
            max_retries: 1,
            ..RetryPolicy::default()
        };
        assert!(one.should_retry(&err, 1));
        assert!(!one.should_retry(&err, 2));
        let p = RetryPolicy::default();
        assert!(p.should_retry(&err, 3));
        assert!(!p.should_retry(&err, 4));
        let none = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert!(!none.should_retry(&err, 1));
    }
}
