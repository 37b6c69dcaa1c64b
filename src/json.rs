//! Minimal JSON text helpers for the persisted formats (no serde on the hot path).

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub fn push_str_lit(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s, true);
    out.push('"');
}

/// Appends `s` to `out` with `\\`, `\n`, `\r` and `\t` escaped by a backslash; with `json`
/// also `"` and the other control characters (`\u00XX`), as inside a JSON string literal.
/// One escaper for the JSON values and the dead-letter queue's tab-separated lines.
pub fn push_escaped(out: &mut String, s: &str, json: bool) {
    for c in s.chars() {
        let e = match c {
            '\\' => '\\',
            '\n' => 'n',
            '\r' => 'r',
            '\t' => 't',
            '"' if json => '"',
            c if json && c < ' ' => {
                out.push_str("\\u00");
                push_hex(out, c as u8);
                continue;
            }
            c => {
                out.push(c);
                continue;
            }
        };
        out.push('\\');
        out.push(e);
    }
}

/// Appends `b` as two lowercase hex digits (JSON `\u00XX` escapes).
pub fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Reverses [`push_escaped`]. With `json`, reads a JSON string literal's body (after its
/// opening quote): every JSON escape is accepted, a raw control character is refused, and the
/// text after the closing quote is returned too. Without, reads all of `s`, accepts only the
/// four escapes `push_escaped` writes and refuses a raw `\r`. `None` for anything else.
pub fn unescape(s: &str, json: bool) -> Option<(String, &str)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            '"' if json => return Some((out, s.get(i + 1..)?)),
            '\\' => match chars.next()?.1 {
                '\\' => '\\',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                _ if !json => return None,
                '"' => '"',
                '/' => '/',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'u' => {
                    let mut n = 0u32;
                    for _ in 0..4 {
                        n = n * 16 + chars.next()?.1.to_digit(16)?;
                    }
                    char::from_u32(n)?
                }
                _ => return None,
            },
            c if c < ' ' && (json || c == '\r') => return None,
            c => c,
        };
        out.push(c);
    }
    (!json).then_some((out, ""))
}

/// The position of `name` in `names`: one name lookup for every enum read from text
/// (purposes, event types, error kinds).
pub fn position(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

/// A decimal `u64` as `str::parse` reads it (an optional `+`, then at least one digit; `None`
/// on overflow), by one small loop instead of the generic parser.
pub fn parse_dec(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(d.into())?;
    }
    Some(n)
}

/// `n` in decimal, without pulling in `std::fmt` integer formatting.
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
    fn parse_dec_reads_what_str_parse_reads() {
        let max = u64::MAX.to_string();
        let over = "18446744073709551616";
        for s in [
            "0",
            "7",
            "+7",
            "007",
            "123",
            "",
            "+",
            "-1",
            "+-1",
            " 1",
            "1 ",
            "1a",
            "٣",
            &max,
            over,
            "99999999999999999999999",
        ] {
            assert_eq!(parse_dec(s), s.parse::<u64>().ok(), "{s:?}");
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
        assert_eq!(
            unescape(&s[1..], true),
            Some(("a\"b\\c\nd\u{1}é".into(), ""))
        );
    }

    #[test]
    fn line_escapes_round_trip_and_refuse_json_only_forms() {
        let text = "tab\there \\ back\\n, \"quoted\"\r\n\u{1}é";
        let mut s = String::new();
        push_escaped(&mut s, text, false);
        assert_eq!(s, "tab\\there \\\\ back\\\\n, \"quoted\"\\r\\n\u{1}é");
        assert_eq!(unescape(&s, false), Some((text.into(), "")));
        for bad in ["\\\"", "\\u0041", "\\/", "a\\", "raw\rreturn"] {
            assert_eq!(unescape(bad, false), None, "{bad:?}");
        }
    }

    #[test]
    fn json_literals_read_every_escape_and_stop_at_the_quote() {
        let (text, rest) = unescape(r#"\"\\\/\b\f\n\r\t\u00e9\u0041x","event":1"#, true).unwrap();
        assert_eq!(
            (text.as_str(), rest),
            ("\"\\/\u{8}\u{c}\n\r\té\u{41}x", r#","event":1"#)
        );
        for bad in ["no end", "raw\ttab\"", "\\x\"", "\\u12\"", "\\ud800\""] {
            assert_eq!(unescape(bad, true), None, "{bad:?}");
        }
    }
}
