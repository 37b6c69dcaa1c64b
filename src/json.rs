//! Minimal JSON text helpers for the persisted formats (no serde on the hot path).

#[allow(unused_imports)]
use crate::prelude::*;

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub fn push_str_lit(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `n` in decimal, without pulling in `core::fmt` integer formatting.
pub fn dec(n: u64) -> String {
    let mut out = String::new();
    push_dec(&mut out, n, 1);
    out
}

/// Appends `n` in decimal to `out`, zero-padded to at least `width` digits (at most 20).
pub fn push_dec(out: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dec_matches_display() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u32::MAX as u64, u64::MAX] {
            assert_eq!(dec(n), n.to_string());
        }
    }

    #[test]
    fn push_dec_pads_to_width() {
        let mut s = String::new();
        push_dec(&mut s, 7, 3);
        push_dec(&mut s, 1234, 2);
        push_dec(&mut s, 0, 2);
        assert_eq!(s, "007123400");
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut s = String::new();
        push_str_lit(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }
}
