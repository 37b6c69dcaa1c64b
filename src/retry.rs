//! Retry policy: exponential backoff with full jitter and `Retry-After`.
//!
//! Sans-IO: the policy only answers "retry?" and "after how long?"; the caller owns the timer.
//! Randomness comes from an injected [`Rng`] so jitter is deterministic in tests.

#[allow(unused_imports)]
use crate::prelude::*;

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
        let raw = self.base_delay_ms as f64 * powi(self.multiplier, retry_number.saturating_sub(1));
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

/// `b^e` by squaring (`f64::powi` needs std's libm, which the tiny build does not link).
fn powi(mut b: f64, mut e: u32) -> f64 {
    let mut r = 1.0;
    while e > 0 {
        if e & 1 == 1 {
            r *= b;
        }
        b *= b;
        e >>= 1;
    }
    r
}

/// Parses a `Retry-After` header value into a delay in ms from `now_ms`: delay-seconds, or an
/// HTTP-date (IMF-fixdate, RFC 850 or asctime); a past date gives 0, anything else `None`.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // An absurdly long number saturates; the policy caps it at max_delay_ms anyway.
        let secs = crate::json::parse_dec(v).unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000));
    }
    let at = parse_http_date(v, now_ms)?;
    let delta = i128::from(at) - i128::from(now_ms);
    Some(if delta <= 0 {
        0
    } else {
        u64::try_from(delta).unwrap_or(u64::MAX)
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// An HTTP-date as ms since the epoch (negative before 1970).
fn parse_http_date(v: &str, now_ms: u64) -> Option<i64> {
    if !v.is_ascii() {
        return None;
    }
    let parts: Vec<&str> = v.split(' ').collect();
    match parts.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [wd, day, mon, year, time, "GMT"] => {
            if !is_day(&DAYS, wd.strip_suffix(',')?) {
                return None;
            }
            let y = i64::from(digits(year, 4)?);
            to_ms(y, month(mon)?, digits(day, 2)?, time)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, time, "GMT"] => {
            if !is_day(&LONG_DAYS, wd.strip_suffix(',')?) {
                return None;
            }
            let mut d = date.split('-');
            let (day, mon, yy) = (d.next()?, d.next()?, d.next()?);
            if d.next().is_some() {
                return None;
            }
            let y = two_digit_year(i64::from(digits(yy, 2)?), now_ms);
            to_ms(y, month(mon)?, digits(day, 2)?, time)
        }
        // asctime: Sun Nov  6 08:49:37 1994 (a single-digit day is padded with a space)
        [wd, mon, "", day, time, year] if day.len() == 1 => {
            asctime(wd, mon, digits(day, 1)?, time, year)
        }
        [wd, mon, day, time, year] if day.len() == 2 => {
            asctime(wd, mon, digits(day, 2)?, time, year)
        }
        _ => None,
    }
}

fn asctime(wd: &str, mon: &str, day: u32, time: &str, year: &str) -> Option<i64> {
    if !is_day(&DAYS, wd) {
        return None;
    }
    to_ms(i64::from(digits(year, 4)?), month(mon)?, day, time)
}

/// RFC 9110: a two-digit year more than 50 years in the future means the most recent past
/// year with those last two digits.
fn two_digit_year(yy: i64, now_ms: u64) -> i64 {
    let days = i64::try_from(now_ms / 86_400_000).unwrap_or(i64::MAX / 2);
    let now_year = crate::time::civil_from_days(days).0;
    let mut y = now_year - now_year.rem_euclid(100) + yy;
    if y > now_year + 50 {
        y -= 100;
    } else if y + 100 <= now_year + 50 {
        y += 100;
    }
    y
}

fn is_day(names: &[&str], s: &str) -> bool {
    crate::json::position(names, s).is_some()
}

fn month(s: &str) -> Option<u32> {
    crate::json::position(&MONTHS, s).map(|i| i as u32 + 1)
}

/// Exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    crate::json::parse_dec(s).map(|n| n as u32)
}

fn to_ms(year: i64, month: u32, day: u32, time: &str) -> Option<i64> {
    let mut t = time.split(':');
    let (h, m, s) = (
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
        digits(t.next()?, 2)?,
    );
    if t.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(h * 3600 + m * 60 + s);
    Some(secs * 1000)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::ports::SeededRng;

    /// 1994-11-06T08:49:37Z, the RFC's example date.
    const RFC_EXAMPLE_MS: u64 = 784_111_777_000;

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

    #[test]
    fn parses_delay_seconds() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(0));
        assert_eq!(
            parse_retry_after("99999999999999999999999", 0),
            Some(u64::MAX)
        );
    }

    #[test]
    fn parses_imf_fixdate_relative_to_now() {
        let v = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_retry_after(v, RFC_EXAMPLE_MS - 5000), Some(5000));
        assert_eq!(parse_retry_after(v, RFC_EXAMPLE_MS), Some(0));
        assert_eq!(parse_retry_after(v, RFC_EXAMPLE_MS + 1), Some(0));
        // 2000-03-01 after a leap day, against a known epoch value.
        let now = 951_868_800_000 - 61_000; // 2000-03-01T00:00:00Z minus 61 s
        assert_eq!(
            parse_retry_after("Wed, 01 Mar 2000 00:00:00 GMT", now),
            Some(61_000)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            Some(0)
        );
    }

    #[test]
    fn parses_rfc850_and_asctime_dates() {
        let now = RFC_EXAMPLE_MS - 1000;
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(1000)
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", now),
            Some(1000)
        );
        assert_eq!(
            parse_retry_after("Sun Nov 06 08:49:37 1994", now),
            Some(1000)
        );
    }

    #[test]
    fn two_digit_years_more_than_fifty_years_ahead_mean_the_past_century() {
        let now_2030 = days_from_civil(2030, 6, 1) as u64 * 86_400_000;
        assert_eq!(two_digit_year(94, now_2030), 1994);
        assert_eq!(two_digit_year(40, now_2030), 2040);
        assert_eq!(two_digit_year(80, now_2030), 2080);
        assert_eq!(two_digit_year(81, now_2030), 1981);
        let year_of = |days| crate::time::civil_from_days(days).0;
        assert_eq!(year_of(days_from_civil(2024, 2, 29)), 2024);
        assert_eq!(year_of(days_from_civil(1999, 12, 31)), 1999);
        assert_eq!(year_of(-1), 1969);
        for (y, m, d) in [(2024, 2, 29), (1999, 12, 31), (1969, 12, 31), (2100, 3, 1)] {
            assert_eq!(
                crate::time::civil_from_days(days_from_civil(y, m, d)),
                (y, m, d)
            );
        }
    }

    #[test]
    fn garbage_is_not_a_retry_after() {
        for v in [
            "",
            " ",
            "-1",
            "1.5",
            "+3",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov   6 08:49:37 1994",
            "Sün, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(v, 0), None, "{v:?}");
        }
    }
}
