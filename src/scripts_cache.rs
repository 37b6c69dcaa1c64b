//! Remote scripts (`config.scriptsUrl`): the request URL for a consent value and the
//! sessionStorage cache of the responses, one entry per consent value, fresh for
//! `scriptsCacheTtlMs`. When a fetch fails or its body is invalid the last good copy is used,
//! also an expired one, also one cached by an earlier page of the same session.
//!
//! Entries are [`CachedScripts`] records, `{"v":1,"fetchedAt":<ms>,"body":"<response text>"}`;
//! a value in a foreign format is a miss. The key is the storage prefix, the service
//! (`scriptsUrl` without its query and fragment) and the consent value: a page that switches to
//! another service, or a second client of another service, never applies the first service's
//! list, while a query that changes (a service switching modes) still finds the last good copy.
//! Entries of earlier releases sit under keys without the service: misses, refilled by the next
//! fetch (the cache is an optimisation; the last good copy of an earlier release is not used).

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::consent::{Purpose, Purposes};
use crate::ports::{Clock, Storage};

/// The version of the stored entry format.
const VERSION: u32 = 1;

/// One cached response, as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CachedScripts {
    /// The format version, [`VERSION`].
    pub v: u32,
    /// When the response was fetched, in ms since the epoch; its freshness counts from here.
    pub fetched_at: u64,
    /// The response body, as received (and validated).
    pub body: String,
}

impl CachedScripts {
    /// Reads a stored entry: (fetched at, body); `None` for a value in another format.
    fn decode(text: &str) -> Option<(u64, String)> {
        let c = crate::stored::from_str::<CachedScripts>(text)?;
        (c.v == VERSION).then_some((c.fetched_at, c.body))
    }
}

/// What the cache holds for a consent value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A response younger than the TTL: use it, do not fetch.
    Fresh(String),
    /// An expired response: fetch, and fall back to it if the fetch fails.
    Stale(String),
    /// Nothing for this consent value: fetch.
    Missing,
}

/// The response cache of one `scriptsUrl`.
pub struct ScriptsCache {
    storage: Rc<dyn Storage>,
    clock: Rc<dyn Clock>,
    prefix: String,
    /// `scriptsUrl` without its query and fragment.
    service: String,
    ttl_ms: u64,
}

impl ScriptsCache {
    /// A cache of the lists of `scripts_url` (resolved, in the browser) in `storage`
    /// (sessionStorage in the browser) under keys starting with `<prefix>:scripts:`, fresh for
    /// `ttl_ms`.
    pub fn new(
        storage: Rc<dyn Storage>,
        clock: Rc<dyn Clock>,
        prefix: &str,
        scripts_url: &str,
        ttl_ms: u64,
    ) -> Self {
        let service = scripts_url.split(['?', '#']).next().unwrap_or_default();
        ScriptsCache {
            storage,
            clock,
            prefix: prefix.into(),
            service: service.into(),
            ttl_ms,
        }
    }

    /// The key of entry `tail` (a consent value, or `last`): `<prefix>:scripts:<tail>@<service>`.
    fn key(&self, tail: &str) -> String {
        [&self.prefix, ":scripts:", tail, "@", &self.service].concat()
    }

    /// Reads the entry stored under `key`: (fetched at, body).
    fn read(&self, key: &str) -> Option<(u64, String)> {
        let Ok(Some(text)) = self.storage.get(key) else {
            return None;
        };
        CachedScripts::decode(&text)
    }

    /// Reads the entry of consent value `consent`.
    fn read_for(&self, consent: Purposes) -> Option<(u64, String)> {
        self.read(&self.key(&consent.bits().to_string()))
    }

    /// What the cache holds for `consent` now.
    pub fn lookup(&self, consent: Purposes) -> Lookup {
        match self.read_for(consent) {
            Some((at, body)) => {
                let now = self.clock.now_ms();
                // A time in the future (clock moved back) counts as expired.
                if at <= now && now - at < self.ttl_ms {
                    Lookup::Fresh(body)
                } else {
                    Lookup::Stale(body)
                }
            }
            None => Lookup::Missing,
        }
    }

    /// Stores a good (validated) response for `consent` and remembers it as the last good one.
    /// Storage failures are ignored: the cache is an optimisation.
    pub fn store(&self, consent: Purposes, body: &str) {
        let bits = consent.bits().to_string();
        let entry = CachedScripts {
            v: VERSION,
            fetched_at: self.clock.now_ms(),
            body: body.into(),
        };
        let Some(entry) = crate::stored::to_string(&entry) else {
            return;
        };
        if self.storage.set(&self.key(&bits), &entry).is_ok() {
            let _ = self.storage.set(&self.key("last"), &bits);
        }
    }

    /// The copy to use when a fetch for `consent` failed: this consent value's entry, even
    /// expired, else the last good response, if it was fetched for no purpose `consent` does
    /// not grant (the service may filter its list by the consent it is sent, so a list fetched
    /// for more consent may hold scripts this consent must not run).
    pub fn fallback(&self, consent: Purposes) -> Option<String> {
        if let Some((_, body)) = self.read_for(consent) {
            return Some(body);
        }
        let Ok(Some(bits)) = self.storage.get(&self.key("last")) else {
            return None;
        };
        let last_bits: u64 = bits.parse().ok()?;
        let mut last = Purposes::NONE;
        for (i, p) in Purpose::ALL.into_iter().enumerate() {
            last = last.with(p, last_bits >> i & 1 == 1);
        }
        if !consent.covers(last) {
            return None;
        }
        let (_, body) = self.read(&self.key(&bits))?;
        Some(body)
    }
}

/// The preferences as the JSON object sent to the scripts service:
/// `{"necessary":true,"functionality":false,...}`, all five purposes in order.
pub fn consent_json(consent: Purposes) -> String {
    json_with(consent, ["{", "\"", ":", ",", "}"])
}

/// [`consent_json`] written with these punctuation marks: `{`, `"`, `:`, `,` and `}`, or their
/// percent-encoded forms (the purpose names and `true` / `false` need no encoding).
fn json_with(consent: Purposes, [open, quote, colon, comma, close]: [&str; 5]) -> String {
    let mut out = String::from(open);
    for i in 0..Purpose::ALL.len() {
        let p = Purpose::ALL[i];
        if i > 0 {
            out.push_str(comma);
        }
        out.push_str(quote);
        out.push_str(p.name());
        out.push_str(quote);
        out.push_str(colon);
        out.push_str(if consent.has(p) { "true" } else { "false" });
    }
    out.push_str(close);
    out
}

/// `<scriptsUrl>?consent=<JSON>` (or `&consent=` when the URL already has a query), the JSON
/// percent-encoded like `encodeURIComponent`.
pub fn request_url(scripts_url: &str, consent: Purposes) -> String {
    // A fragment is never sent to the server: drop it.
    let base = match scripts_url.split_once('#') {
        Some((b, _)) => b,
        None => scripts_url,
    };
    let sep = if base.contains('?') { "&" } else { "?" };
    let json = json_with(consent, ["%7B", "%22", "%3A", "%2C", "%7D"]);
    [base, sep, "consent=", &json].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{FakeClock, MemoryStorage};
    use Purpose::*;

    const SERVICE: &str = "https://example.test/scripts?mode=a";

    fn setup(ttl: u64) -> (Rc<MemoryStorage>, Rc<FakeClock>, ScriptsCache) {
        let s = Rc::new(MemoryStorage::new());
        let c = Rc::new(FakeClock::at(1_000_000));
        let cache = ScriptsCache::new(s.clone(), c.clone(), "ca", SERVICE, ttl);
        (s, c, cache)
    }

    fn granted(list: &[Purpose]) -> Purposes {
        Purposes::of(list).with(Necessary, true)
    }

    #[test]
    fn a_response_is_fresh_until_the_ttl_then_stale() {
        let (_, clock, cache) = setup(300_000);
        let c = granted(&[Measurement]);
        assert_eq!(cache.lookup(c), Lookup::Missing);
        cache.store(c, r#"{"scripts":[]}"#);
        assert_eq!(cache.lookup(c), Lookup::Fresh(r#"{"scripts":[]}"#.into()));
        clock.advance(299_999);
        assert!(matches!(cache.lookup(c), Lookup::Fresh(_)));
        clock.advance(1);
        assert_eq!(cache.lookup(c), Lookup::Stale(r#"{"scripts":[]}"#.into()));
    }

    #[test]
    fn entries_are_per_consent_value() {
        let (_, _, cache) = setup(300_000);
        let a = granted(&[]);
        let b = granted(&[Measurement]);
        cache.store(a, "A");
        assert_eq!(cache.lookup(b), Lookup::Missing);
        cache.store(b, "B");
        assert_eq!(cache.lookup(a), Lookup::Fresh("A".into()));
        assert_eq!(cache.lookup(b), Lookup::Fresh("B".into()));
    }

    #[test]
    fn fallback_keeps_an_expired_copy_then_the_last_good_of_no_more_consent() {
        let (_, clock, cache) = setup(1000);
        let a = granted(&[]);
        let b = granted(&[Marketing]);
        assert_eq!(cache.fallback(a), None);
        cache.store(a, "A");
        clock.advance(10_000);
        assert_eq!(cache.lookup(a), Lookup::Stale("A".into()));
        assert_eq!(cache.fallback(a).as_deref(), Some("A"));
        // Nothing for b yet: the last good response (a's, fetched for less) is used.
        assert_eq!(cache.fallback(b).as_deref(), Some("A"));
        cache.store(b, "B");
        assert_eq!(
            cache.fallback(b.with(Experience, true)).as_deref(),
            Some("B")
        );
        // Never a list fetched for a purpose this consent does not grant.
        assert_eq!(cache.fallback(granted(&[Experience])), None);
    }

    #[test]
    fn survives_a_reload_through_the_same_storage() {
        let (storage, clock, cache) = setup(1000);
        let c = granted(&[Measurement]);
        cache.store(c, "kept");
        drop(cache);
        clock.advance(5000);
        let again = ScriptsCache::new(storage, clock, "ca", SERVICE, 1000);
        assert_eq!(again.lookup(c), Lookup::Stale("kept".into()));
        assert_eq!(again.fallback(c).as_deref(), Some("kept"));
    }

    #[test]
    fn another_prefix_foreign_values_and_broken_storage_are_misses() {
        let (storage, clock, cache) = setup(1000);
        let c = granted(&[]);
        cache.store(c, "A");
        let other = ScriptsCache::new(storage.clone(), clock.clone(), "other", SERVICE, 1000);
        assert_eq!(other.lookup(c), Lookup::Missing);
        assert_eq!(other.fallback(c), None);
        storage
            .set("ca:scripts:1@https://example.test/scripts", "garbage")
            .unwrap();
        assert_eq!(cache.lookup(c), Lookup::Missing);
        storage
            .set("ca:scripts:1@https://example.test/scripts", "x\nA")
            .unwrap();
        assert_eq!(cache.lookup(c), Lookup::Missing);
        for foreign in [
            r#"{"v":2,"fetchedAt":1,"body":"A"}"#,
            r#"{"v":1,"fetchedAt":-1,"body":"A"}"#,
            r#"{"v":1,"fetchedAt":1,"body":"A","x":1}"#,
            r#"{"v":1,"fetchedAt":1}"#,
        ] {
            storage.set("ca:scripts:1", foreign).unwrap();
            assert_eq!(cache.lookup(c), Lookup::Missing, "{foreign}");
        }
        storage.set_broken(true);
        cache.store(c, "B");
        assert_eq!(cache.lookup(c), Lookup::Missing);
        assert_eq!(cache.fallback(c), None);
    }

    #[test]
    fn another_scripts_url_is_another_cache_but_another_query_is_not() {
        let (storage, clock, cache) = setup(1000);
        let c = granted(&[Measurement]);
        cache.store(c, "A");
        let other = |url: &str| ScriptsCache::new(storage.clone(), clock.clone(), "ca", url, 1000);
        for url in [
            "https://example.test/other-scripts",
            "https://cdn.example.test/scripts",
        ] {
            let o = other(url);
            assert_eq!(o.lookup(c), Lookup::Missing, "{url}");
            assert_eq!(o.fallback(c), None, "{url}");
            assert_eq!(
                o.fallback(granted(&[Measurement, Marketing])),
                None,
                "{url}"
            );
        }
        let same = other("https://example.test/scripts?mode=b#x");
        assert_eq!(same.lookup(c), Lookup::Fresh("A".into()));
    }

    #[test]
    fn an_entry_stored_by_the_previous_release_is_a_miss_not_applied() {
        let (storage, _clock, cache) = setup(1000);
        let c = granted(&[Measurement]);
        // The previous release's text for consent bits 9, under its key without the service.
        storage
            .set("ca:scripts:9", "999500\n{\"scripts\":[],\"metadata\":{}}")
            .unwrap();
        storage.set("ca:scripts:last", "9").unwrap();
        assert_eq!(cache.lookup(c), Lookup::Missing);
        assert_eq!(cache.fallback(c), None);
        cache.store(c, "B\nwith a line");
        assert_eq!(cache.lookup(c), Lookup::Fresh("B\nwith a line".into()));
    }

    #[test]
    fn a_clock_moved_back_makes_the_entry_stale() {
        let (_, clock, cache) = setup(1000);
        let c = granted(&[]);
        cache.store(c, "A");
        clock.set(10);
        assert_eq!(cache.lookup(c), Lookup::Stale("A".into()));
    }

    #[test]
    fn request_url_carries_all_five_purposes_encoded() {
        let c = granted(&[Measurement]);
        assert_eq!(
            consent_json(c),
            r#"{"necessary":true,"functionality":false,"experience":false,"measurement":true,"marketing":false}"#
        );
        let u = request_url("/scripts", c);
        assert!(
            u.starts_with("/scripts?consent=%7B%22necessary%22%3Atrue%2C"),
            "{u}"
        );
        assert!(u.ends_with("%22marketing%22%3Afalse%7D"), "{u}");
        assert!(request_url("/scripts?mode=bad", c).starts_with("/scripts?mode=bad&consent=%7B"));
        assert!(request_url("/scripts#x", c).starts_with("/scripts?consent="));
    }

    /// `encodeURIComponent`, for comparison.
    fn encode(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[test]
    fn request_url_is_the_json_percent_encoded_for_every_consent_value() {
        for bits in 0..32usize {
            let on: Vec<Purpose> = (0..5)
                .filter(|i| bits & 1 << i != 0)
                .map(|i| Purpose::ALL[i])
                .collect();
            let c = Purposes::of(&on);
            let json = consent_json(c);
            assert_eq!(
                request_url("/s", c),
                ["/s?consent=", &encode(&json)].concat()
            );
        }
    }
}
