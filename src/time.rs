//! Timestamps as ISO-8601 strings, by integer arithmetic (no float formatting in the wasm).

#[allow(unused_imports)]
use crate::prelude::*;

use crate::json::push_dec;

/// Formats `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let mut out = String::with_capacity(24);
    push_dec(&mut out, y as u64, 4);
    out.push('-');
    push_dec(&mut out, m as u64, 2);
    out.push('-');
    push_dec(&mut out, d as u64, 2);
    out.push('T');
    push_dec(&mut out, sod / 3600, 2);
    out.push(':');
    push_dec(&mut out, sod / 60 % 60, 2);
    out.push(':');
    push_dec(&mut out, sod % 60, 2);
    out.push('.');
    push_dec(&mut out, ms % 1000, 3);
    out.push('Z');
    out
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(iso8601(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn civil_dates_round_trip_across_centuries() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
