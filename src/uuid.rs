//! Random (version 4) UUIDs for messageId and anonymousId.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::ports::Rng;

/// A new RFC 4122 version-4 UUID in lowercase hyphenated form.
pub fn v4(rng: &mut dyn Rng) -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        chunk.copy_from_slice(&rng.next_u32().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        crate::json::push_hex(&mut out, *b);
    }
    out
}

/// Whether `s` looks like a hyphenated UUID (used to accept a persisted anonymousId).
pub fn is_uuid(s: &str) -> bool {
    if s.len() != 36 {
        return false;
    }
    for (i, b) in s.bytes().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            b == b'-'
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    #[test]
    fn v4_has_version_and_variant_bits_and_is_unique() {
        let mut rng = SeededRng::new(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = v4(&mut rng);
            assert!(is_uuid(&id), "{id}");
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn is_uuid_rejects_other_strings() {
        assert!(!is_uuid(""));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    }
}
