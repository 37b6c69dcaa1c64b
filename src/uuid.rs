//! Recognising UUIDs (the browser makes the random version-4 ones: `platform::uuid`).

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

    #[test]
    fn is_uuid_rejects_other_strings() {
        assert!(!is_uuid(""));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    }
}
