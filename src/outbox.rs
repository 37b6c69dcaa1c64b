//! The relay's durable outbox: every event accepted for the relay is written to storage before
//! it is sent and removed once the backend acknowledged it (or it was dead-lettered or purged),
//! so a reload, a closed tab or a backend outage never loses it. Also the relay's wire format
//! (batch bodies and 64 KB beacon chunks), kept here so that it is tested natively beside the
//! entries it carries.
//!
//! Layout in `localStorage`, one key per event so a `track()` costs one write and an
//! acknowledgement one removal, whatever the backlog:
//!
//! - `<prefix>:outbox:<destination>:<owner>:<seq>` -> `{"v":1,"id":<messageId>,"event":<event>}`
//!   (a [`StoredEvent`]: the event JSON is embedded as it was captured, never re-serialised)
//! - `<prefix>:outbox-alive:<owner>` -> last heartbeat in ms (only without Web Locks)
//!
//! Each page (each relay instance) is one *owner*, an id made of its start time and a random
//! part, and only ever sends its own entries. On load it *adopts* the entries of owners whose
//! page is gone: it re-keys them under its own id, oldest owner first, and delivers them before
//! anything new. Whether an owner is gone is decided by the browser layer: with the Web Locks
//! API each owner holds the lock `<prefix>:outbox:<owner>` for its page's life (and the lock of
//! every owner it adopted), and an owner whose lock can be taken (`ifAvailable`) is gone;
//! without it, see [`Outbox::is_silent`].

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use serde::Deserialize;

use crate::ports::{Log, Storage, StorageError};
use crate::stored::{quoted, RawJson};

/// Heartbeat period of the fallback used where `navigator.locks` is missing, in ms.
/// Long enough that a background tab whose timers the browser throttles to one a minute still
/// counts as alive; a page that unloads normally says so at once ([`Outbox::leave`]).
pub const HEARTBEAT_MS: u64 = 25_000;

/// Largest body handed to `navigator.sendBeacon` / a keepalive `fetch` at page hide (64 KB).
pub const BEACON_MAX_BYTES: usize = 64 * 1024;

/// The version of the stored entry format (unchanged since the first release).
const VERSION: u32 = 1;

/// One stored outbox entry, as read back: the event is the text of the stored event value (in
/// the browser, `JSON.stringify` of it: the text captured, since that is what wrote it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEvent {
    /// The format version, [`VERSION`].
    pub v: u32,
    /// The event's messageId.
    pub id: String,
    /// The event JSON.
    pub event: RawJson,
}

/// An undelivered event read back from storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number under the current owner (after adoption).
    pub seq: u64,
    /// Its messageId.
    pub message_id: String,
    /// The event JSON, exactly as it was captured.
    pub json: String,
}

/// A page's view of one relay destination's outbox. See the module docs.
pub struct Outbox {
    storage: Rc<dyn Storage>,
    log: Rc<dyn Log>,
    /// `<prefix>:outbox:<destination>:`
    base: String,
    /// `<prefix>:outbox-alive:`
    alive: String,
    /// `<prefix>:outbox-endpoint:`: where each owner's entries were accepted for.
    endpoints: String,
    /// The endpoint this page's entries are for (see [`Outbox::for_endpoint`]).
    endpoint: Option<String>,
    /// Whether this page recorded its endpoint (with its first entry).
    endpoint_recorded: bool,
    owner: String,
    next: u64,
    /// The entries this page holds in storage, oldest first: (messageId, seq). Acknowledged
    /// entries are usually the oldest, so forgetting one is a pop at the front.
    pending: VecDeque<(Rc<str>, u64)>,
    store_warned: bool,
    corrupt_warned: bool,
}

impl Outbox {
    /// The outbox of destination `dest` under storage prefix `prefix`, for page `owner`
    /// (see [`owner_id`]).
    pub fn new(
        storage: Rc<dyn Storage>,
        log: Rc<dyn Log>,
        prefix: &str,
        dest: &str,
        owner: String,
    ) -> Self {
        Outbox {
            storage,
            log,
            base: [prefix, ":outbox:", dest, ":"].concat(),
            alive: [prefix, ":outbox-alive:"].concat(),
            endpoints: [prefix, ":outbox-endpoint:"].concat(),
            endpoint: None,
            endpoint_recorded: false,
            owner,
            next: 0,
            pending: VecDeque::new(),
            store_warned: false,
            corrupt_warned: false,
        }
    }

    /// Records, with this page's first entry, the endpoint its entries are accepted for, and
    /// adopts only the entries of owners that recorded the same one (or none, as earlier
    /// releases did): two clients sharing a storage prefix and a destination id never deliver
    /// each other's events to their own endpoint.
    pub fn for_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// This page's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How many entries this page holds in storage.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether this page holds no entries in storage.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn key(&self, owner: &str, seq: u64) -> String {
        [&self.base, owner, ":", &seq.to_string()].concat()
    }

    fn store_failed(&mut self, e: StorageError) {
        if !self.store_warned {
            self.store_warned = true;
            self.log.warn(
                &[
                    "relay outbox: localStorage failed (",
                    e.as_str(),
                    "); undelivered events are kept in memory for this page only",
                ]
                .concat(),
            );
        }
    }

    fn corrupt(&mut self, key: &str) {
        let _ = self.storage.remove(key);
        if !self.corrupt_warned {
            self.corrupt_warned = true;
            self.log.warn(
                &[
                    "relay outbox: discarded an unreadable entry (",
                    key,
                    "); further ones are discarded silently",
                ]
                .concat(),
            );
        }
    }

    /// Writes an accepted event before it is sent. A failed write (full quota, storage
    /// disabled) warns once; the event then lives only in memory and is still delivered.
    pub fn put(&mut self, message_id: Rc<str>, json: &str) {
        let seq = self.next;
        let key = self.key(&self.owner, seq);
        match self.storage.set(&key, &encode_value(&message_id, json)) {
            Ok(()) => {
                self.next += 1;
                self.pending.push_back((message_id, seq));
                self.record_endpoint();
            }
            Err(e) => self.store_failed(e),
        }
    }

    /// Writes this page's endpoint record once, when it first holds an entry.
    fn record_endpoint(&mut self) {
        if self.endpoint_recorded {
            return;
        }
        if let Some(e) = &self.endpoint {
            let key = [self.endpoints.as_str(), &self.owner].concat();
            self.endpoint_recorded = self.storage.set(&key, e).is_ok();
        }
    }

    /// Whether `owner`'s entries may be adopted here: it recorded no endpoint (an earlier
    /// release, or a storage that refused the record) or this page's.
    fn same_endpoint(&self, owner: &str) -> bool {
        let key = [self.endpoints.as_str(), owner].concat();
        match (self.storage.get(&key), &self.endpoint) {
            (Ok(Some(theirs)), Some(ours)) => theirs == *ours,
            _ => true,
        }
    }

    /// Removes the oldest entry with `message_id` (acknowledged, dead-lettered, purged or
    /// handed to a beacon). Unknown ids (kept in memory only) are ignored.
    pub fn forget(&mut self, message_id: &str) {
        let Some(seq) = self.unpend(Some(message_id), 0) else {
            return;
        };
        let key = self.key(&self.owner, seq);
        if let Err(e) = self.storage.remove(&key) {
            self.store_failed(e);
        }
    }

    /// Drops the oldest pending entry with `message_id` (with `None`: sequence number `seq`),
    /// keeping the others in order; its sequence number. Found at the front in the usual case
    /// (the oldest entries are acknowledged first), so a backlog drains in linear time.
    fn unpend(&mut self, message_id: Option<&str>, seq: u64) -> Option<u64> {
        let i = self
            .pending
            .iter()
            .position(|(id, s)| message_id.map_or(*s == seq, |m| **id == *m))?;
        self.pending.remove(i).map(|(_, s)| s)
    }

    /// Removes the entry with sequence number `seq` (the browser found its event unreadable),
    /// with the one corrupt-entry warning.
    pub fn discard(&mut self, seq: u64) {
        self.unpend(None, seq);
        let key = self.key(&self.owner, seq);
        self.corrupt(&key);
    }

    /// Other owners holding entries of this destination, oldest first (by the start time in
    /// the owner id, then the id). The browser then adopts those whose page is gone.
    pub fn other_owners(&mut self) -> Vec<String> {
        let keys = match self.storage.keys_with_prefix(&self.base) {
            Ok(k) => k,
            Err(e) => {
                self.store_failed(e);
                return Vec::new();
            }
        };
        // Few owners: an insertion sort keeps the code small.
        let mut owners: Vec<String> = Vec::new();
        for k in &keys {
            if let Some((owner, _)) = split_key(k.get(self.base.len()..).unwrap_or("")) {
                if owner != self.owner
                    && !owners.iter().any(|o| o == owner)
                    && self.same_endpoint(owner)
                {
                    let rank = (owner_time(owner), owner);
                    owners.push(owner.into());
                    let mut j = owners.len() - 1;
                    while j > 0 && (owner_time(&owners[j - 1]), owners[j - 1].as_str()) > rank {
                        owners.swap(j - 1, j);
                        j -= 1;
                    }
                }
            }
        }
        owners
    }

    /// Adopts every entry of `owner` (whose page is gone; the caller holds its lock): re-keys
    /// them under this page, oldest first, and returns them for delivery. Unreadable values are
    /// removed with one warning; a messageId already in `seen` (a copy left by an interrupted
    /// adoption) is removed without being delivered twice. [`Outbox::adoption`] and
    /// [`Outbox::adopt_some`] do the same in steps, so a large backlog never holds the page's
    /// main thread for long.
    pub fn adopt(&mut self, owner: &str, seen: &mut HashSet<String>) -> Vec<Entry> {
        let mut a = self.adoption(owner);
        self.adopt_some(&mut a, usize::MAX, seen)
    }

    /// Starts adopting `owner`'s entries: finds them, in sequence order (keys that are not an
    /// entry of ours are removed with the one warning).
    pub fn adoption(&mut self, owner: &str) -> Adoption {
        let prefix = [&self.base, owner, ":"].concat();
        let keys = match self.storage.keys_with_prefix(&prefix) {
            Ok(k) => k,
            Err(e) => {
                self.store_failed(e);
                Vec::new()
            }
        };
        let mut seqs: Vec<u64> = Vec::with_capacity(keys.len());
        for k in keys {
            let rest = k.get(prefix.len()..).unwrap_or("");
            match rest.parse::<u64>() {
                Ok(seq) if seq.to_string() == rest => seqs.push(seq),
                _ => self.corrupt(&k),
            }
        }
        // Keys come back in storage order, not sequence order. Newest last: taken from the end.
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        Adoption {
            owner: owner.into(),
            seqs,
            full: false,
        }
    }

    /// Adopts up to `max` more entries of `adoption`, oldest first (see [`Outbox::adopt`]);
    /// once it [`is done`](Adoption::is_done), the owner's heartbeat key goes too.
    pub fn adopt_some(
        &mut self,
        adoption: &mut Adoption,
        max: usize,
        seen: &mut HashSet<String>,
    ) -> Vec<Entry> {
        let owner = adoption.owner.as_str();
        let mut out = Vec::with_capacity(max.min(adoption.seqs.len()));
        while out.len() < max {
            let Some(old_seq) = adoption.seqs.pop() else {
                break;
            };
            let old = self.key(owner, old_seq);
            let value = match self.storage.get(&old) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    self.store_failed(e);
                    continue;
                }
            };
            let Some((id, json)) = decode_value(&value) else {
                self.corrupt(&old);
                continue;
            };
            if !seen.insert(id.clone()) {
                let _ = self.storage.remove(&old);
                continue;
            }
            let seq = self.next;
            let new = self.key(&self.owner, seq);
            // Write the copy first: if the page dies in between, the next adopter finds both
            // and delivers one. When the quota is full, free the old entry and try again, and
            // from then on free first (a refused write to a full storage is slow: a backlog
            // that filled the quota is re-keyed without one per entry).
            let mut stored = Err(StorageError::QuotaExceeded);
            if !adoption.full {
                stored = self.storage.set(&new, &value);
            }
            if let Err(StorageError::QuotaExceeded) = stored {
                adoption.full = true;
                let _ = self.storage.remove(&old);
                stored = self.storage.set(&new, &value);
            }
            let _ = self.storage.remove(&old);
            match stored {
                Ok(()) => {
                    self.next += 1;
                    self.pending.push_back((id.as_str().into(), seq));
                    self.record_endpoint();
                }
                Err(e) => self.store_failed(e),
            }
            out.push(Entry {
                seq,
                message_id: id,
                json,
            });
        }
        if adoption.is_done() {
            let prefix = [&self.base, owner, ":"].concat();
            if self
                .storage
                .keys_with_prefix(&prefix)
                .is_ok_and(|k| k.is_empty())
            {
                let _ = self.storage.remove(&[&self.alive, owner].concat());
                let _ = self.storage.remove(&[&self.endpoints, owner].concat());
            }
        }
        out
    }

    /// Fallback without Web Locks: records that this page is alive. Call every
    /// [`HEARTBEAT_MS`].
    pub fn beat(&mut self, now_ms: u64) {
        let key = [self.alive.as_str(), &self.owner].concat();
        if let Err(e) = self.storage.set(&key, &now_ms.to_string()) {
            self.store_failed(e);
        }
    }

    /// Fallback without Web Locks: this page is being discarded (`pagehide`, not kept in the
    /// back/forward cache), so its entries may be adopted at once by the next page.
    pub fn leave(&mut self) {
        let _ = self
            .storage
            .remove(&[self.alive.as_str(), &self.owner].concat());
    }

    /// Fallback without Web Locks: whether `owner`'s page is presumed gone, i.e. its heartbeat
    /// is missing, unreadable or older than three periods. Best effort: two tabs loading in the
    /// same instant may both adopt an entry; the backend's messageId dedupe then sees it once.
    pub fn is_silent(&self, owner: &str, now_ms: u64) -> bool {
        let key = [&self.alive, owner].concat();
        match self.storage.get(&key) {
            Ok(Some(v)) => match v.parse::<u64>() {
                Ok(at) => now_ms.saturating_sub(at) > 3 * HEARTBEAT_MS,
                Err(_) => true,
            },
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

/// An adoption under way (see [`Outbox::adoption`]): whose entries, and the sequence numbers
/// left, newest first.
pub struct Adoption {
    owner: String,
    seqs: Vec<u64>,
    /// Whether the storage refused a copy for its quota: entries are then freed first.
    full: bool,
}

impl Adoption {
    /// Whether every entry found was adopted (or discarded).
    pub fn is_done(&self) -> bool {
        self.seqs.is_empty()
    }
}

/// An owner id: the page's start time and a random part (no `:`), so that owners sort by age.
pub fn owner_id(now_ms: u64, random: &str) -> String {
    let mut id = now_ms.to_string();
    id.push('-');
    let start = id.len();
    for b in random.bytes() {
        if b.is_ascii_alphanumeric() && id.len() < start + 12 {
            id.push(b as char);
        }
    }
    id
}

/// The start time in an owner id (0 for a foreign id, which then sorts first).
fn owner_time(owner: &str) -> u64 {
    let time = match owner.split_once('-') {
        Some((time, _)) => time,
        None => owner,
    };
    time.parse().unwrap_or(0)
}

/// Splits `<owner>:<seq>`; `None` for anything else (e.g. a destination id that merely starts
/// with ours).
fn split_key(rest: &str) -> Option<(&str, u64)> {
    let (owner, seq) = rest.split_once(':')?;
    if owner.is_empty() || seq.contains(':') {
        return None;
    }
    Some((owner, seq.parse().ok()?))
}

/// The stored value of an entry: the text [`StoredEvent`] reads. Written on every `track()`
/// for the relay, so the event JSON (valid, from `JSON.stringify`) is embedded as it is: a
/// `&RawValue` for serde would have to parse it again first. Only the messageId is escaped.
pub fn encode_value(message_id: &str, json: &str) -> String {
    [
        r#"{"v":1,"id":"#,
        &quoted(message_id),
        r#","event":"#,
        json,
        "}",
    ]
    .concat()
}

/// Reads a stored value back: (messageId, event JSON), `None` when it is not one of ours (not
/// JSON, another version or shape, an event that is not an object).
pub fn decode_value(v: &str) -> Option<(String, String)> {
    let stored: StoredEvent = crate::stored::from_str(v)?;
    let json = stored.event.0;
    (stored.v == VERSION && json.starts_with('{')).then_some((stored.id, json))
}

/// The relay's request body: `{"batch":[<event>,...],"sentAt":"<ISO>","writeKey"?:...}`, built
/// from the captured JSON text (events are never serialised again).
pub fn batch_body(events: &[&str], sent_at: &str, write_key: Option<&str>) -> String {
    let mut out = String::from(r#"{"batch":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    push_tail(&mut out, sent_at, write_key);
    out
}

fn push_tail(out: &mut String, sent_at: &str, write_key: Option<&str>) {
    out.push_str(r#"],"sentAt":"#);
    out.push_str(&quoted(sent_at));
    if let Some(k) = write_key {
        out.push_str(r#","writeKey":"#);
        out.push_str(&quoted(k));
    }
    out.push('}');
}

/// Splits events into consecutive batch bodies of at most `limit` bytes each, for
/// `sendBeacon` at page hide. Returns (events in the chunk, body) pairs covering a prefix of
/// `events`: it stops before an event too large to fit in a chunk on its own.
pub fn beacon_chunks(
    events: &[&str],
    sent_at: &str,
    write_key: Option<&str>,
    limit: usize,
) -> Vec<(usize, String)> {
    let mut tail = String::new();
    push_tail(&mut tail, sent_at, write_key);
    let overhead = r#"{"batch":["#.len() + tail.len();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let mut size = overhead;
        let mut end = start;
        while end < events.len() {
            let add = events[end].len() + usize::from(end > start);
            if size + add > limit {
                break;
            }
            size += add;
            end += 1;
        }
        if end == start {
            break;
        }
        let body = batch_body(&events[start..end], sent_at, write_key);
        chunks.push((end - start, body));
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MemoryStorage, RecordingLog};

    fn outbox(s: &Rc<MemoryStorage>, log: &Rc<RecordingLog>, owner: &str) -> Outbox {
        Outbox::new(s.clone(), log.clone(), "ca", "relay", owner.into())
    }

    fn ev(id: &str) -> String {
        [r#"{"type":"track","messageId":""#, id, r#""}"#].concat()
    }

    fn keys(s: &MemoryStorage) -> Vec<String> {
        let mut k = s.keys_with_prefix("ca:outbox:").unwrap();
        k.sort();
        k
    }

    #[test]
    fn each_event_is_one_key_written_on_put_and_removed_on_forget() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut o = outbox(&s, &log, "100-a");
        o.put("m1".into(), &ev("m1"));
        o.put("m2".into(), &ev("m2"));
        assert_eq!(
            keys(&s),
            vec!["ca:outbox:relay:100-a:0", "ca:outbox:relay:100-a:1"]
        );
        let v = s.get("ca:outbox:relay:100-a:1").unwrap().unwrap();
        assert_eq!(v, [r#"{"v":1,"id":"m2","event":"#, &ev("m2"), "}"].concat());
        o.forget("m1");
        assert_eq!(keys(&s), vec!["ca:outbox:relay:100-a:1"]);
        o.forget("unknown");
        o.forget("m2");
        assert!(keys(&s).is_empty());
        assert!(o.is_empty());
        assert!(log.warnings.borrow().is_empty());
    }

    #[test]
    fn values_round_trip_with_escaped_ids_and_reject_foreign_text() {
        let id = "a\"b\\c\nd\u{1}é";
        let v = encode_value(id, r#"{"x":[1,"}"]}"#);
        assert_eq!(
            decode_value(&v),
            Some((id.to_string(), r#"{"x":[1,"}"]}"#.to_string()))
        );
        for bad in [
            "",
            "null",
            "[1,2]",
            r#"{"v":2,"id":"m","event":{}}"#,
            r#"{"v":1,"id":"m","event":{}"#,
            r#"{"v":1,"id":"m","event":[]}"#,
            r#"{"v":1,"id":"m","event":}"#,
            r#"{"v":1,"id":"m\q","event":{}}"#,
            r#"{"v":1,"id":"m\u12","event":{}}"#,
            r#"{"v":1,"id":"m"#,
        ] {
            assert_eq!(decode_value(bad), None, "{bad:?}");
        }
    }

    /// The entry format is unchanged since the previous release: its values (here as its
    /// encoder wrote them, control characters as `\u00XX`) are read as they are, event bytes
    /// included, and adopted without being rewritten.
    #[test]
    fn an_entry_stored_by_the_previous_release_is_read_and_adopted_verbatim() {
        let old = r#"{"v":1,"id":"a\"b\\c\nd\u0001\u0008é","event":{"type":"track","messageId":"m 1","properties":{"s":"\u00e9 \/"}}}"#;
        assert_eq!(
            decode_value(old),
            Some((
                "a\"b\\c\nd\u{1}\u{8}é".to_string(),
                r#"{"type":"track","messageId":"m 1","properties":{"s":"\u00e9 \/"}}"#.to_string()
            ))
        );
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        s.set("ca:outbox:relay:100-a:0", old).unwrap();
        let mut me = outbox(&s, &log, "200-b");
        let got = me.adopt("100-a", &mut HashSet::new());
        assert_eq!(got.len(), 1);
        assert_eq!(
            s.get("ca:outbox:relay:200-b:0").unwrap().as_deref(),
            Some(old)
        );
        assert!(log.warnings.borrow().is_empty());
    }

    /// Two clients with one storage prefix and destination id but other endpoints: neither
    /// adopts the other's entries; entries of an earlier release (no record) are adopted.
    #[test]
    fn an_owner_of_another_endpoint_is_never_adopted() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let at = |owner: &str, endpoint: &str| outbox(&s, &log, owner).for_endpoint(endpoint);
        let mut a = at("100-a", "https://a.example/v1/batch");
        a.put("a0".into(), &ev("a0"));
        let mut legacy = outbox(&s, &log, "150-l");
        legacy.put("l0".into(), &ev("l0"));
        let mut b = at("200-b", "https://b.example/v1/batch");
        assert_eq!(b.other_owners(), vec!["150-l"], "not a's entries");
        let mut a2 = at("300-a", "https://a.example/v1/batch");
        assert_eq!(a2.other_owners(), vec!["100-a", "150-l"]);
        let got = a2.adopt("100-a", &mut HashSet::new());
        assert_eq!(got.len(), 1);
        assert_eq!(
            s.get("ca:outbox-endpoint:100-a").unwrap(),
            None,
            "record gone with them"
        );
        assert_eq!(
            s.get("ca:outbox-endpoint:300-a").unwrap().as_deref(),
            Some("https://a.example/v1/batch"),
            "the adopter records its own with its first entry"
        );
        b.put("b0".into(), &ev("b0"));
        assert_eq!(a2.other_owners(), vec!["150-l"], "b's entries stay b's");
    }

    /// A large backlog is adopted in steps of at most `max` entries, in sequence order, and
    /// drained from the front: the same result as one adoption, and every entry forgotten.
    #[test]
    fn a_large_backlog_is_adopted_in_steps_in_order_and_drains_from_the_front() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut gone = outbox(&s, &log, "100-a");
        for i in 0..2_000 {
            gone.put(i.to_string().into(), &ev("e"));
        }
        let mut me = outbox(&s, &log, "200-b");
        let mut seen = HashSet::new();
        let mut a = me.adoption("100-a");
        let mut got = Vec::new();
        let mut steps = 0;
        while !a.is_done() {
            let some = me.adopt_some(&mut a, 300, &mut seen);
            assert!(some.len() <= 300);
            got.extend(some);
            steps += 1;
        }
        assert_eq!(steps, 7);
        let ids: Vec<String> = got.iter().map(|e| e.message_id.clone()).collect();
        assert_eq!(ids, (0..2_000).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(me.len(), 2_000);
        for e in &got {
            me.forget(&e.message_id);
        }
        assert!(me.is_empty());
        assert!(s.keys_with_prefix("ca:outbox:").unwrap().is_empty());
    }

    #[test]
    fn adoption_rekeys_dead_owners_entries_oldest_owner_first_in_seq_order() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        // Two earlier pages; the older one started at 100, the newer at 200.
        let mut newer = outbox(&s, &log, "200-b");
        let mut older = outbox(&s, &log, "100-a");
        for i in 0..12 {
            older.put(["a", &i.to_string()].concat().into(), &ev("a"));
        }
        newer.put("b0".into(), &ev("b0"));
        // Another destination whose id starts with ours is not ours.
        let mut other = Outbox::new(s.clone(), log.clone(), "ca", "relay:x", "50-z".into());
        other.put("x".into(), &ev("x"));
        let mut me = outbox(&s, &log, "300-c");
        let owners = me.other_owners();
        assert_eq!(owners, vec!["100-a", "200-b"]);
        let mut seen = HashSet::new();
        let mut got = Vec::new();
        for o in &owners {
            got.extend(me.adopt(o, &mut seen));
        }
        let ids: Vec<&str> = got.iter().map(|e| e.message_id.as_str()).collect();
        let mut want: Vec<String> = (0..12).map(|i| ["a", &i.to_string()].concat()).collect();
        want.push("b0".into());
        assert_eq!(
            ids, want,
            "numeric seq order (a10 after a9), older owner first"
        );
        assert_eq!(got[12].json, ev("b0"));
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (0..13).collect::<Vec<_>>()
        );
        let mine = s.keys_with_prefix("ca:outbox:relay:300-c:").unwrap();
        assert_eq!(mine.len(), 13);
        assert!(s
            .keys_with_prefix("ca:outbox:relay:100-a:")
            .unwrap()
            .is_empty());
        assert!(s
            .keys_with_prefix("ca:outbox:relay:200-b:")
            .unwrap()
            .is_empty());
        assert_eq!(s.keys_with_prefix("ca:outbox:relay:x:").unwrap().len(), 1);
        // Adopted entries are ours now: acknowledging one removes its new key.
        me.forget("a0");
        assert_eq!(
            s.keys_with_prefix("ca:outbox:relay:300-c:").unwrap().len(),
            12
        );
        // A later page sees only the new owner.
        let mut next = outbox(&s, &log, "400-d");
        assert_eq!(next.other_owners(), vec!["300-c"]);
    }

    #[test]
    fn corrupt_and_foreign_values_are_discarded_with_one_warning() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut dead = outbox(&s, &log, "100-a");
        dead.put("ok1".into(), &ev("ok1"));
        s.set("ca:outbox:relay:100-a:1", "garbage").unwrap();
        s.set("ca:outbox:relay:100-a:2", "{\"v\":1}").unwrap();
        s.set("ca:outbox:relay:100-a:+0", &encode_value("m", "{}"))
            .unwrap();
        s.set("ca:outbox:relay:100-a:x", &encode_value("m", "{}"))
            .unwrap();
        dead.next = 3;
        dead.put("ok2".into(), &ev("ok2"));
        let mut me = outbox(&s, &log, "200-b");
        let got = me.adopt("100-a", &mut HashSet::new());
        assert_eq!(
            got.iter()
                .map(|e| e.message_id.as_str())
                .collect::<Vec<_>>(),
            vec!["ok1", "ok2"]
        );
        assert!(s
            .keys_with_prefix("ca:outbox:relay:100-a")
            .unwrap()
            .is_empty());
        assert_eq!(
            log.warnings.borrow().len(),
            1,
            "{:?}",
            log.warnings.borrow()
        );
        // The browser found an event it cannot parse: discarded, no second warning.
        me.discard(got[1].seq);
        assert_eq!(me.len(), 1);
        assert_eq!(
            s.keys_with_prefix("ca:outbox:relay:200-b:").unwrap().len(),
            1
        );
        assert_eq!(log.warnings.borrow().len(), 1);
    }

    #[test]
    fn a_copy_left_by_an_interrupted_adoption_is_delivered_once() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut a = outbox(&s, &log, "100-a");
        a.put("m1".into(), &ev("m1"));
        // A page adopted m1 (wrote its copy) and died before removing the original.
        s.set("ca:outbox:relay:150-b:0", &encode_value("m1", &ev("m1")))
            .unwrap();
        let mut me = outbox(&s, &log, "200-c");
        let mut seen = HashSet::new();
        let mut got = Vec::new();
        for o in me.other_owners() {
            got.extend(me.adopt(&o, &mut seen));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(keys(&s), vec!["ca:outbox:relay:200-c:0"]);
    }

    #[test]
    fn full_quota_warns_once_and_keeps_going_in_memory() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut o = outbox(&s, &log, "100-a");
        o.put("m0".into(), &ev("m0"));
        s.set_quota(Some(0));
        for i in 1..5 {
            o.put(["m", &i.to_string()].concat().into(), &ev("m"));
        }
        assert_eq!(o.len(), 1, "only the stored entry is tracked");
        assert_eq!(log.warnings.borrow().len(), 1);
        assert!(log.warnings.borrow()[0].contains("quota"));
        // Forgetting events that live only in memory is harmless.
        o.forget("m3");
        s.set_quota(None);
        o.put("m5".into(), &ev("m5"));
        assert_eq!(o.len(), 2);
        // Broken storage: nothing throws, no second warning.
        s.set_broken(true);
        o.put("m6".into(), &ev("m6"));
        o.forget("m0");
        assert!(o.other_owners().is_empty());
        assert_eq!(log.warnings.borrow().len(), 1);
    }

    #[test]
    fn adoption_into_a_full_quota_frees_the_old_entry_first() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut dead = outbox(&s, &log, "100-a");
        dead.put("m1".into(), &ev("m1"));
        let used: usize = keys(&s)
            .iter()
            .map(|k| k.len() + s.get(k).unwrap().unwrap().len())
            .sum();
        s.set_quota(Some(used));
        let mut me = outbox(&s, &log, "100-b");
        let got = me.adopt("100-a", &mut HashSet::new());
        assert_eq!(got.len(), 1);
        assert_eq!(keys(&s), vec!["ca:outbox:relay:100-b:0"]);
        assert!(log.warnings.borrow().is_empty());
    }

    #[test]
    fn heartbeat_fallback_presumes_an_owner_gone_after_three_silent_periods() {
        let s = Rc::new(MemoryStorage::new());
        let log = Rc::new(RecordingLog::default());
        let mut a = outbox(&s, &log, "100-a");
        let me = outbox(&s, &log, "200-b");
        assert!(me.is_silent("100-a", 0), "no heartbeat at all");
        a.beat(10_000);
        assert!(!me.is_silent("100-a", 10_000 + 3 * HEARTBEAT_MS));
        assert!(me.is_silent("100-a", 10_001 + 3 * HEARTBEAT_MS));
        s.set("ca:outbox-alive:100-a", "soon").unwrap();
        assert!(me.is_silent("100-a", 0), "unreadable heartbeat");
        s.set_broken(true);
        assert!(!me.is_silent("100-a", 0), "unknown: do not adopt");
        s.set_broken(false);
        // A page that leaves is gone at once.
        a.beat(10_000);
        a.leave();
        assert!(me.is_silent("100-a", 10_000));
        // Adopting everything of an owner removes its heartbeat.
        a.beat(10_000);
        a.put("m".into(), &ev("m"));
        let mut me = me;
        me.adopt("100-a", &mut HashSet::new());
        assert_eq!(s.get("ca:outbox-alive:100-a").unwrap(), None);
    }

    #[test]
    fn owner_ids_sort_by_start_time() {
        let a = owner_id(99, "f0:0d-xyz");
        assert_eq!(a, "99-f00dxyz");
        assert_eq!(owner_time(&a), 99);
        assert_eq!(owner_time("foreign"), 0);
        assert_eq!(split_key("99-f:12"), Some(("99-f", 12)));
        assert_eq!(split_key("x:99-f:12"), None);
        assert_eq!(split_key(":1"), None);
        assert_eq!(split_key("a:b"), None);
    }

    #[test]
    fn batch_body_concatenates_event_json_and_escapes_the_tail() {
        let events = [r#"{"a":1}"#, r#"{"b":"x"}"#];
        assert_eq!(
            batch_body(&events, "2024-01-01T00:00:00.000Z", None),
            r#"{"batch":[{"a":1},{"b":"x"}],"sentAt":"2024-01-01T00:00:00.000Z"}"#
        );
        assert_eq!(
            batch_body(&[], "t", Some("k\"ey")),
            r#"{"batch":[],"sentAt":"t","writeKey":"k\"ey"}"#
        );
    }

    #[test]
    fn beacon_chunks_stay_under_the_limit_and_cover_a_prefix_in_order() {
        let big: Vec<String> = (0..200)
            .map(|i| {
                [
                    r#"{"i":"#,
                    &i.to_string(),
                    r#","pad":""#,
                    &"x".repeat(900),
                    "\"}",
                ]
                .concat()
            })
            .collect();
        let events: Vec<&str> = big.iter().map(String::as_str).collect();
        let chunks = beacon_chunks(
            &events,
            "2024-01-01T00:00:00.000Z",
            Some("wk"),
            BEACON_MAX_BYTES,
        );
        assert!(chunks.len() >= 3);
        assert_eq!(chunks.iter().map(|c| c.0).sum::<usize>(), 200);
        let mut all = Vec::new();
        for (n, body) in &chunks {
            assert!(body.len() <= BEACON_MAX_BYTES, "{}", body.len());
            assert!(body.starts_with(r#"{"batch":[{"i":"#));
            assert!(body.ends_with(r#"],"sentAt":"2024-01-01T00:00:00.000Z","writeKey":"wk"}"#));
            // Each chunk is a complete batch: its events are exactly the next n inputs.
            let inner = &body[r#"{"batch":["#.len()
                ..body.len() - r#"],"sentAt":"2024-01-01T00:00:00.000Z","writeKey":"wk"}"#.len()];
            let parts: Vec<&str> = inner.split(r#"},{"#).collect();
            assert_eq!(parts.len(), *n);
            all.extend(parts.iter().map(|p| p.len()));
        }
        assert_eq!(all.len(), 200);
        // A chunk is filled greedily: the next event would not have fitted.
        let first = &chunks[0];
        assert!(first.1.len() + events[first.0].len() + 1 > BEACON_MAX_BYTES);
        // An event that cannot fit alone ends the prefix.
        let huge = "x".repeat(BEACON_MAX_BYTES);
        let chunks = beacon_chunks(&[events[0], &huge, events[1]], "t", None, BEACON_MAX_BYTES);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].0, 1);
        assert!(beacon_chunks(&[], "t", None, BEACON_MAX_BYTES).is_empty());
    }
}
