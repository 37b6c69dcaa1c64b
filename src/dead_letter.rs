//! The dead-letter queue kept in localStorage: deliveries that exhausted their retries, kept
//! for inspection and replay.
//!
//! Bounded (oldest dropped first, counted; the first drop warns, naming why), expiring (`ttl_ms` after an entry's last failure),
//! shared by the tabs of a site (every operation starts from the stored value, so a tab never
//! drops another tab's dead letters nor brings back the ones another tab replayed or cleared;
//! only two writes in the same moment can still race, as localStorage has no transactions),
//! and crash-proof: a corrupt or foreign stored value is discarded with one warning (an entry
//! whose event fails the check given to [`DeadLetterQueue::open`], when listed or taken), a full
//! quota evicts the oldest entries (a drop like any other), and a storage that cannot be written at all leaves the
//! queue in memory for the rest of the page, with one warning. No call returns an error.
//!
//! Stored format, version 2: one JSON document, the entries oldest first (each a serde
//! [`DeadLetter`]; the event JSON is kept as a string, verbatim):
//!
//! ```text
//! {"v":2,"entries":[{"id":"…","destination":"relay","event":"{\"type\":\"track\",…}",
//!   "kind":"server","message":"HTTP 503","status":503,"attempts":4,
//!   "firstFailedAt":1700000000000,"lastFailedAt":1700000007000}, …]}
//! ```
//!
//! A truncated value is not JSON; a value of another version, shape or app is discarded as a
//! whole. The tab-separated `cadlq1` text of earlier releases is still read (module `cadlq1`) and
//! is replaced by version 2 on the next write.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::ports::{Log, Storage, StorageError};
use crate::stored::quoted;

/// The version of the stored document this release writes.
const VERSION: u32 = 2;

/// The stored document, `{"v":2,"entries":[...]}`: the queue's entries under a version number
/// (written by [`encode`] from the entries serialised one by one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    v: u32,
    entries: Vec<DeadLetter>,
}

/// Dead-letter queue settings (`deadLetter` in the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// The localStorage key holding the queue.
    pub storage_key: String,
    /// The most entries kept; pushing beyond it drops the oldest.
    pub max_size: usize,
    /// How long an entry is kept after its last failure, in ms.
    pub ttl_ms: u64,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            storage_key: "consent-analytics:dlq".into(),
            max_size: 1000,
            ttl_ms: 86_400_000,
        }
    }
}

/// One delivery that exhausted its retries; stored as a JSON object with camelCase names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetter {
    /// A unique id for this entry.
    pub id: String,
    /// The destination the event failed to reach.
    pub destination: String,
    /// The event as serialised by `JSON.stringify`, stored verbatim (as a JSON string, so a
    /// text that is not JSON is kept to be discarded with a warning when listed or taken).
    #[serde(rename = "event")]
    pub event_json: String,
    /// The class of the last failure.
    pub kind: ErrorKind,
    /// The last failure's description.
    pub message: String,
    /// The last failure's HTTP status, for HTTP failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the first attempt failed, in ms since the epoch.
    pub first_failed_at: u64,
    /// When the last attempt failed, in ms since the epoch; the TTL counts from here.
    pub last_failed_at: u64,
}

/// The dead-letter queue, read from its [`Storage`] at the start of every operation and written
/// back after every change.
pub struct DeadLetterQueue {
    config: DeadLetterConfig,
    storage: Rc<dyn Storage>,
    log: Rc<dyn Log>,
    /// Whether an entry's event is usable (the browser: a JSON object); see `drop_unusable`.
    usable: fn(&str) -> bool,
    /// Oldest first.
    entries: Vec<DeadLetter>,
    dropped: u64,
    expired: u64,
    memory_only: bool,
    /// While held, writes are deferred to `release` (many dead letters in one task: one write).
    held: bool,
    dirty: bool,
    /// The stored text this queue last read or wrote, and its entries: an operation whose
    /// stored value is still that text (no other tab wrote since) takes the entries from here
    /// instead of reading the text again.
    last: Option<(String, Vec<DeadLetter>)>,
}

impl DeadLetterQueue {
    /// Loads the queue stored under `config.storage_key`. An absent value gives an empty
    /// queue; a corrupt or foreign one is discarded with a warning; expired entries are dropped.
    /// An entry whose event text `usable` refuses is discarded, with a warning naming it, when
    /// the queue is listed or taken.
    pub fn open(
        config: DeadLetterConfig,
        storage: Rc<dyn Storage>,
        log: Rc<dyn Log>,
        usable: fn(&str) -> bool,
        now_ms: u64,
    ) -> Self {
        let mut q = DeadLetterQueue {
            config,
            storage,
            log,
            usable,
            entries: Vec::new(),
            dropped: 0,
            expired: 0,
            memory_only: false,
            held: false,
            dirty: false,
            last: None,
        };
        let mut dirty = q.reload();
        dirty |= q.drop_expired(now_ms) > 0;
        dirty |= q.enforce_bound() > 0;
        if dirty {
            q.persist();
        }
        q
    }

    /// Reads the stored queue into memory (an absent value is an empty queue); returns whether
    /// the stored value was unreadable and discarded (with a warning), so it must be rewritten.
    /// A storage that cannot be read switches to memory only.
    fn reload(&mut self) -> bool {
        match self.storage.get(&self.config.storage_key) {
            Ok(value) => {
                let entries = match value {
                    None => Some(Vec::new()),
                    // Unchanged since this queue read or wrote it: not read again.
                    Some(v) if self.last.as_ref().is_some_and(|(text, _)| *text == v) => {
                        self.last.as_ref().map(|(_, entries)| entries.clone())
                    }
                    Some(v) => {
                        let entries = decode(&v);
                        self.last = entries.clone().map(|e| (v, e));
                        entries
                    }
                };
                let bad = entries.is_none();
                self.entries = entries.unwrap_or_default();
                if bad {
                    let msg = self.key_message("discarded an unreadable dead-letter queue under");
                    self.log.warn(&msg);
                }
                bad
            }
            Err(e) => {
                self.fall_back_to_memory(e);
                false
            }
        }
    }

    /// Starts an operation from the stored value, which other tabs may have changed since
    /// (nothing to do in memory only, or once a held change is waiting to be written: then
    /// memory is ahead of storage).
    fn sync(&mut self) {
        if !self.memory_only && !self.dirty && self.reload() {
            self.persist();
        }
    }

    /// Adds a dead letter (newest last). Beyond `max_size` the oldest entries are dropped and
    /// counted in [`dropped`](Self::dropped).
    pub fn push(&mut self, entry: DeadLetter, now_ms: u64) {
        self.sync();
        self.entries.push(entry);
        self.drop_expired(now_ms);
        self.enforce_bound();
        self.persist();
    }

    /// The unexpired dead letters, oldest first, for one destination or all of them.
    pub fn list(&mut self, destination: Option<&str>, now_ms: u64) -> Vec<&DeadLetter> {
        self.sync();
        if self.drop_unusable() {
            self.persist();
        }
        let mut list = Vec::new();
        for e in &self.entries {
            if matches(e, destination) && !expired(e, self.config.ttl_ms, now_ms) {
                list.push(e);
            }
        }
        list
    }

    /// Removes and returns the unexpired dead letters (oldest first) for one destination or
    /// all of them, for replay. Failed replays are pushed back.
    pub fn take(&mut self, destination: Option<&str>, now_ms: u64) -> Vec<DeadLetter> {
        self.sync();
        let unusable = self.drop_unusable();
        let expired = self.drop_expired(now_ms);
        let taken = self.split_for(destination);
        if unusable || expired > 0 || !taken.is_empty() {
            self.persist();
        }
        taken
    }

    /// Deletes the dead letters for one destination or all of them; returns how many.
    pub fn clear(&mut self, destination: Option<&str>) -> usize {
        self.sync();
        let cleared = self.split_for(destination).len();
        if cleared > 0 {
            self.persist();
        }
        cleared
    }

    /// Drops the entries that expired by `now_ms`; returns how many.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        self.sync();
        let n = self.drop_expired(now_ms);
        if n > 0 {
            self.persist();
        }
        n
    }

    /// The entries held as of the last operation, including any that expired since.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries evicted since `open`, by the `max_size` bound or to fit the storage quota.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Entries removed since `open` because their TTL ran out.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Whether the storage failed and the queue now lives in memory only, for this page.
    pub fn is_memory_only(&self) -> bool {
        self.memory_only
    }

    fn drop_expired(&mut self, now_ms: u64) -> usize {
        let ttl = self.config.ttl_ms;
        let n = self.split(Pick::Expired(ttl, now_ms)).len();
        self.expired += n as u64;
        n
    }

    /// Discards the entries whose event is not usable, with a warning naming each; whether
    /// there were any.
    fn drop_unusable(&mut self) -> bool {
        let bad = self.split(Pick::Unusable(self.usable));
        for e in &bad {
            let mut msg =
                self.key_message("discarded a dead letter whose event is not a JSON object from");
            msg.push_str(": id ");
            msg.push_str(&quoted(&e.id));
            self.log.warn(&msg);
        }
        !bad.is_empty()
    }

    /// Removes and returns the entries `pick` selects, oldest first; the rest keep their order.
    /// (One loop, not one `retain` per condition, in the wasm.)
    fn split(&mut self, pick: Pick) -> Vec<DeadLetter> {
        let mut taken = Vec::new();
        for e in std::mem::take(&mut self.entries) {
            let out = match pick {
                Pick::Expired(ttl_ms, now_ms) => expired(&e, ttl_ms, now_ms),
                Pick::For(destination) => matches(&e, destination),
                Pick::Unusable(usable) => !usable(&e.event_json),
            };
            if out {
                taken.push(e);
            } else {
                self.entries.push(e);
            }
        }
        taken
    }

    /// Removes and returns the entries for one destination or all of them.
    fn split_for(&mut self, destination: Option<&str>) -> Vec<DeadLetter> {
        self.split(Pick::For(destination))
    }

    fn enforce_bound(&mut self) -> usize {
        let over = self.entries.len().saturating_sub(self.config.max_size);
        self.evict(over, "the queue is full (deadLetter.maxSize)");
        over
    }

    /// Drops the `n` oldest entries (`split_off`: no `Drain` code in the wasm), counted; the
    /// first drop of this queue warns, naming `why` (later ones are only counted).
    fn evict(&mut self, n: usize, why: &str) {
        if n > 0 {
            if self.dropped == 0 {
                let mut msg = String::from("dropping the oldest dead letters: ");
                msg.push_str(why);
                self.log.warn(&msg);
            }
            self.entries = self.entries.split_off(n);
            self.dropped += n as u64;
        }
    }

    /// Defers writes until [`DeadLetterQueue::release`], so a burst of dead letters in one
    /// task costs one storage read and one write instead of one each per entry. Holding
    /// costs nothing until an operation (the engine holds around every batch of commands).
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Ends a [`DeadLetterQueue::hold`], writing once if anything changed.
    pub fn release(&mut self) {
        self.held = false;
        if std::mem::take(&mut self.dirty) {
            self.persist();
        }
    }

    /// Writes the whole queue once; on a full quota evicts the oldest entries one by one until
    /// it fits; if nothing fits or storage is unavailable, continues in memory.
    fn persist(&mut self) {
        if self.memory_only {
            return;
        }
        if self.held {
            self.dirty = true;
            return;
        }
        // Each entry is serialised once: evicting the oldest to fit the quota then only writes a
        // shorter list of the same texts.
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            match crate::stored::to_string(e) {
                Some(text) => entries.push(text),
                // A DeadLetter always serialises; were it ever not to, keep the queue in memory.
                None => return self.fall_back_to_memory(StorageError::Unavailable),
            }
        }
        let n = entries.len();
        let mut evict = 0;
        loop {
            let value = encode(&entries[evict..]);
            match self.storage.set(&self.config.storage_key, &value) {
                Ok(()) => {
                    self.evict(evict, "the storage quota is full");
                    self.last = Some((value, self.entries.clone()));
                    return;
                }
                // Never evict the newest entry: if even it alone does not fit, the quota is held by
                // other data and eviction cannot help; keep everything in memory instead.
                Err(StorageError::QuotaExceeded) if evict + 1 < n => evict += 1,
                Err(e) => {
                    self.fall_back_to_memory(e);
                    return;
                }
            }
        }
    }

    /// `before`, then ` localStorage key ` and the quoted storage key: the start of a warning.
    fn key_message(&self, before: &str) -> String {
        let mut msg = String::from(before);
        msg.push_str(" localStorage key ");
        msg.push_str(&quoted(&self.config.storage_key));
        msg
    }

    fn fall_back_to_memory(&mut self, err: StorageError) {
        self.memory_only = true;
        self.last = None;
        // The stored value is now stale; a reload must not resurrect entries taken since.
        let _ = self.storage.remove(&self.config.storage_key);
        let mut msg = self.key_message("cannot store dead letters under");
        msg.push_str(" (");
        msg.push_str(err.as_str());
        msg.push_str("); keeping them in memory for this page only");
        self.log.warn(&msg);
    }
}

/// Which entries [`DeadLetterQueue::split`] takes.
#[derive(Clone, Copy)]
enum Pick<'a> {
    /// Those whose TTL (`.0`) ran out by `.1`.
    Expired(u64, u64),
    /// Those of one destination, or all of them.
    For(Option<&'a str>),
    /// Those whose event the check (`.0`) refuses.
    Unusable(fn(&str) -> bool),
}

fn matches(e: &DeadLetter, destination: Option<&str>) -> bool {
    match destination {
        Some(d) => e.destination == d,
        None => true,
    }
}

/// Whether `e`'s TTL ran out by `now_ms`.
fn expired(e: &DeadLetter, ttl_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(e.last_failed_at) >= ttl_ms
}

/// The stored value of a queue whose entries (oldest first) are already serialised: a
/// [`Document`] around their texts.
fn encode(entries: &[String]) -> String {
    [
        r#"{"v":"#,
        &VERSION.to_string(),
        r#","entries":["#,
        &entries.join(","),
        "]}",
    ]
    .concat()
}

/// The entries of a stored value, or `None` unless it is a well-formed queue of this version or
/// the `cadlq1` text of earlier releases.
fn decode(value: &str) -> Option<Vec<DeadLetter>> {
    match crate::stored::from_str::<Document>(value) {
        Some(doc) => (doc.v == VERSION).then_some(doc.entries),
        None => cadlq1::decode(value),
    }
}

/// The stored format of earlier releases, read so that their dead letters survive the update
/// (the next write replaces it by version 2):
///
/// ```text
/// cadlq1 <entry count>\n
/// <id>\t<destination>\t<kind>\t<status>\t<attempts>\t<first_failed_at>\t<last_failed_at>\t<message>\t<event json>\n
/// ...
/// ```
///
/// `id`, `destination` and `message` are escaped (`\\`, `\t`, `\n`, `\r`); `status` is empty
/// when absent; numbers are canonical decimal; the event JSON is the verbatim last field. The
/// count and the final newline make any truncation detectable. Anything not exactly in this
/// form is discarded as a whole.
mod cadlq1 {
    use super::DeadLetter;
    use crate::error::ErrorKind;

    /// The version header of the stored value.
    const HEADER: &str = "cadlq1";

    /// The entries of a `cadlq1` value, or `None` unless it is exactly well-formed.
    pub(super) fn decode(value: &str) -> Option<Vec<DeadLetter>> {
        let (header, mut body) = value.split_once('\n')?;
        let count = number(header.strip_prefix(HEADER)?.strip_prefix(' ')?)?;
        // Each entry needs at least 9 bytes, so a forged count cannot over-allocate.
        let count = usize::try_from(count).ok()?;
        if count > body.len() / 9 {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let (line, rest) = body.split_once('\n')?;
            body = rest;
            entries.push(decode_line(line)?);
        }
        body.is_empty().then_some(entries)
    }

    /// A canonical decimal number: digits only, no sign, no leading zero.
    fn number(s: &str) -> Option<u64> {
        if s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        s.parse().ok()
    }

    /// Reverses the escaping of `id`, `destination` and `message`: only `\\`, `\n`, `\r` and
    /// `\t` are escapes, and a raw `\r` is refused.
    fn unescape(s: &str) -> Option<String> {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            out.push(match c {
                '\\' => match chars.next()? {
                    '\\' => '\\',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    _ => return None,
                },
                '\r' => return None,
                c => c,
            });
        }
        Some(out)
    }

    fn decode_line(line: &str) -> Option<DeadLetter> {
        let mut fields = line.splitn(9, '\t');
        let mut next = || fields.next();
        let id = unescape(next()?)?;
        let destination = unescape(next()?)?;
        let kind = ErrorKind::from_name(next()?)?;
        let status = match next()? {
            "" => None,
            s => Some(u16::try_from(number(s)?).ok()?),
        };
        let attempts = u32::try_from(number(next()?)?).ok()?;
        let first_failed_at = number(next()?)?;
        let last_failed_at = number(next()?)?;
        let message = unescape(next()?)?;
        // The event JSON is the rest of the line (it may hold tabs).
        let event_json = next()?;
        if event_json.contains('\r') {
            return None;
        }
        Some(DeadLetter {
            id,
            destination,
            event_json: event_json.into(),
            kind,
            message,
            status,
            attempts,
            first_failed_at,
            last_failed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MemoryStorage, RecordingLog, Rng, SeededRng};

    const T0: u64 = 1_700_000_000_000;
    const KEY: &str = "consent-analytics:dlq";
    /// The stored value of an empty queue.
    const EMPTY: &str = r#"{"v":2,"entries":[]}"#;
    /// Three dead letters as the previous release stored them (its `cadlq1` text, written by
    /// its encoder for the entries of `real_value`).
    const LEGACY: &str = "cadlq1 3\n\
        0\trelay\tserver\t503\t4\t1699999993000\t1700000000000\tmess\\tage\\n\t{\"type\":\"track\",\"event\":\"Signed Up\",\"properties\":{\"plan\":\"pro\"}}\n\
        1\trelay\tserver\t503\t4\t1699999993000\t1700000000000\tmess\\tage\\n\t{\"type\":\"track\",\"event\":\"Signed Up\",\"properties\":{\"plan\":\"pro\"}}\n\
        2\trelay\tserver\t503\t4\t1699999993000\t1700000000000\tmess\\tage\\n\t{\"type\":\"track\",\"event\":\"Signed Up\",\"properties\":{\"plan\":\"pro\"}}\n";

    fn letter(id: &str, destination: &str, at: u64) -> DeadLetter {
        DeadLetter {
            id: id.into(),
            destination: destination.into(),
            event_json: r#"{"type":"track","event":"Signed Up","properties":{"plan":"pro"}}"#
                .into(),
            kind: ErrorKind::Server,
            message: "HTTP 503".into(),
            status: Some(503),
            attempts: 4,
            first_failed_at: at.saturating_sub(7000),
            last_failed_at: at,
        }
    }

    fn setup() -> (Rc<MemoryStorage>, Rc<RecordingLog>) {
        (
            Rc::new(MemoryStorage::new()),
            Rc::new(RecordingLog::default()),
        )
    }

    fn open_with(
        config: DeadLetterConfig,
        storage: &Rc<MemoryStorage>,
        log: &Rc<RecordingLog>,
        now: u64,
    ) -> DeadLetterQueue {
        DeadLetterQueue::open(config, storage.clone(), log.clone(), usable, now)
    }

    /// The check the tests give, standing in for the browser's JSON object check: refuses the
    /// texts the tests write as not JSON (`not json`) or not an object (`[...]`).
    fn usable(json: &str) -> bool {
        !(json.starts_with("not") || json.starts_with('['))
    }

    fn open(storage: &Rc<MemoryStorage>, log: &Rc<RecordingLog>, now: u64) -> DeadLetterQueue {
        open_with(DeadLetterConfig::default(), storage, log, now)
    }

    fn ids(list: &[&DeadLetter]) -> Vec<String> {
        list.iter().map(|e| e.id.clone()).collect()
    }

    fn warnings(log: &RecordingLog) -> usize {
        log.warnings.borrow().len()
    }

    #[test]
    fn default_config_matches_spec() {
        let c = DeadLetterConfig::default();
        assert_eq!(
            (c.storage_key.as_str(), c.max_size, c.ttl_ms),
            (KEY, 1000, 86_400_000)
        );
    }

    #[test]
    fn absent_value_opens_empty_without_warning_or_write() {
        let (s, log) = setup();
        let q = open(&s, &log, T0);
        assert!(q.is_empty());
        assert_eq!(warnings(&log), 0);
        assert_eq!(s.get(KEY).unwrap(), None);
    }

    #[test]
    fn entries_survive_a_reopen_exactly() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        let mut odd = letter("id\t1\\x", "dest\nwith\r\nbreaks", T0);
        odd.message = "tab\there \\ back\\n slash, é, \"quoted\"".into();
        odd.status = None;
        odd.kind = ErrorKind::ScriptLoad;
        odd.event_json = "{\"a\":\"x\\ty\\n\",\"b\":\"\t\"}".into();
        q.push(odd.clone(), T0);
        q.push(letter("2", "posthog", T0 + 1), T0 + 1);
        let mut empty = letter("", "", T0 + 2);
        empty.message.clear();
        empty.event_json.clear();
        q.push(empty.clone(), T0 + 2);

        let mut again = open(&s, &log, T0 + 3);
        let got: Vec<DeadLetter> = again.list(None, T0 + 3).into_iter().cloned().collect();
        assert_eq!(got, vec![odd, letter("2", "posthog", T0 + 1), empty]);
        assert_eq!(warnings(&log), 0);
        let stored = s.get(KEY).unwrap().unwrap();
        assert!(
            stored.starts_with(r#"{"v":2,"entries":[{"id":"id\t1\\x","#),
            "{stored}"
        );
        assert_eq!(entry_count(&stored), 3);
    }

    /// The number of entries in a stored value of this version.
    fn entry_count(stored: &str) -> usize {
        let doc: serde_json::Value = serde_json::from_str(stored).unwrap();
        assert_eq!(doc["v"], 2, "{stored}");
        doc["entries"].as_array().unwrap().len()
    }

    #[test]
    fn raw_line_breaks_in_event_json_are_kept_verbatim() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        let mut e = letter("1", "relay", T0);
        e.event_json = "{\n\"a\":1\r\n}".into();
        q.push(e, T0);
        let mut again = open(&s, &log, T0);
        assert_eq!(again.list(None, T0)[0].event_json, "{\n\"a\":1\r\n}");
    }

    #[test]
    fn max_size_drops_the_oldest_counts_them_and_warns_once() {
        let (s, log) = setup();
        let config = DeadLetterConfig {
            max_size: 3,
            ..DeadLetterConfig::default()
        };
        let mut q = open_with(config.clone(), &s, &log, T0);
        for i in 0..10 {
            q.push(letter(&i.to_string(), "ga4", T0 + i), T0 + i);
            assert!(q.len() <= 3);
        }
        assert_eq!(q.dropped(), 7);
        let w = log.warnings.borrow().clone();
        assert_eq!(w.len(), 1, "one warning for the drops: {w:?}");
        assert!(w[0].contains("deadLetter.maxSize"), "{w:?}");
        assert_eq!(ids(&q.list(None, T0 + 10)), ["7", "8", "9"]);
        assert_eq!(
            ids(&open_with(config, &s, &log, T0 + 10).list(None, T0 + 10)),
            ["7", "8", "9"]
        );
    }

    #[test]
    fn a_smaller_max_size_at_open_trims_the_oldest() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        for i in 0..5 {
            q.push(letter(&i.to_string(), "ga4", T0), T0);
        }
        let config = DeadLetterConfig {
            max_size: 2,
            ..DeadLetterConfig::default()
        };
        let mut q = open_with(config, &s, &log, T0);
        assert_eq!(ids(&q.list(None, T0)), ["3", "4"]);
        assert_eq!(q.dropped(), 3);
        assert_eq!(entry_count(&s.get(KEY).unwrap().unwrap()), 2);
    }

    #[test]
    fn entries_expire_ttl_after_their_last_failure() {
        let (s, log) = setup();
        let config = DeadLetterConfig {
            ttl_ms: 1000,
            ..DeadLetterConfig::default()
        };
        let mut q = open_with(config.clone(), &s, &log, T0);
        q.push(letter("old", "ga4", T0), T0);
        q.push(letter("new", "ga4", T0 + 600), T0 + 600);
        assert_eq!(ids(&q.list(None, T0 + 999)), ["old", "new"]);
        assert_eq!(ids(&q.list(None, T0 + 1000)), ["new"]);
        assert_eq!(q.len(), 2, "list does not mutate");
        assert_eq!(q.expired(), 0);

        let reopened = open_with(config, &s, &log, T0 + 1000);
        assert_eq!(reopened.len(), 1);
        assert_eq!(reopened.expired(), 1);

        // The reopened queue removed "old" from storage; `q` starts from the stored value.
        assert_eq!(q.prune(T0 + 1600), 1);
        assert_eq!((q.len(), q.expired()), (0, 1));
        assert_eq!(s.get(KEY).unwrap().as_deref(), Some(EMPTY));
    }

    /// Two tabs: each queue starts every operation from the stored value.
    #[test]
    fn two_queues_on_one_storage_neither_lose_nor_bring_back_entries() {
        let (s, log) = setup();
        let (mut a, mut b) = (open(&s, &log, T0), open(&s, &log, T0));
        a.push(letter("from-a", "ga4", T0), T0);
        b.push(letter("from-b", "ga4", T0), T0);
        assert_eq!(ids(&a.list(None, T0)), ["from-a", "from-b"]);
        assert_eq!(ids(&b.list(None, T0)), ["from-a", "from-b"]);

        // A replays both; B's next dead letter does not bring them back.
        assert_eq!(a.take(None, T0).len(), 2);
        b.push(letter("later", "ga4", T0), T0);
        assert_eq!(ids(&open(&s, &log, T0).list(None, T0)), ["later"]);
        // B clears what A sees; the burst of a held queue is written on release.
        assert_eq!(b.clear(None), 1);
        a.hold();
        a.push(letter("burst", "ga4", T0), T0);
        assert_eq!(
            ids(&b.list(None, T0)),
            Vec::<String>::new(),
            "not yet written"
        );
        a.release();
        assert_eq!(ids(&b.list(None, T0)), ["burst"]);
        assert_eq!(warnings(&log), 0);
    }

    /// A value another tab (or app) corrupts mid-page is discarded with one warning when an
    /// operation next reads it, and rewritten.
    #[test]
    fn a_value_corrupted_mid_page_is_discarded_once() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        q.push(letter("0", "ga4", T0), T0);
        s.set(KEY, "{\"some\":\"other app\"}").unwrap();
        assert_eq!(ids(&q.list(None, T0)), Vec::<String>::new());
        assert_eq!(ids(&q.list(None, T0)), Vec::<String>::new());
        assert_eq!(warnings(&log), 1);
        assert_eq!(s.get(KEY).unwrap().as_deref(), Some(EMPTY));
    }

    #[test]
    fn take_skips_expired_entries_and_counts_them() {
        let (s, log) = setup();
        let config = DeadLetterConfig {
            ttl_ms: 1000,
            ..DeadLetterConfig::default()
        };
        let mut q = open_with(config, &s, &log, T0);
        q.push(letter("a", "ga4", T0), T0);
        q.push(letter("b", "ga4", T0 + 500), T0 + 500);
        let taken = q.take(None, T0 + 1200);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].id, "b");
        assert_eq!(q.expired(), 1);
    }

    #[test]
    fn list_take_and_clear_filter_by_destination() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        for (i, d) in ["ga4", "posthog", "ga4", "relay", "posthog", "ga4"]
            .iter()
            .enumerate()
        {
            q.push(letter(&i.to_string(), d, T0 + i as u64), T0 + i as u64);
        }
        let now = T0 + 10;
        assert_eq!(ids(&q.list(Some("ga4"), now)), ["0", "2", "5"]);
        assert_eq!(ids(&q.list(Some("nobody"), now)), Vec::<String>::new());
        assert_eq!(q.list(None, now).len(), 6);

        let taken: Vec<String> = q
            .take(Some("posthog"), now)
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(taken, ["1", "4"]);
        assert_eq!(ids(&q.list(None, now)), ["0", "2", "3", "5"]);

        assert_eq!(q.clear(Some("ga4")), 3);
        assert_eq!(q.clear(Some("ga4")), 0);
        assert_eq!(ids(&open(&s, &log, now).list(None, now)), ["3"]);
        assert_eq!(q.clear(None), 1);
        assert!(q.is_empty());
        assert!(open(&s, &log, now).is_empty());
    }

    #[test]
    fn an_entry_whose_event_is_refused_is_discarded_when_listed_or_taken_with_a_warning_naming_it()
    {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        for i in 0..4 {
            let mut e = letter(&i.to_string(), "ga4", T0);
            if i % 2 == 1 {
                e.event_json = "not json".into();
            }
            q.push(e, T0);
        }
        assert_eq!(warnings(&log), 0, "pushing does not check");
        assert_eq!(ids(&q.list(Some("relay"), T0)), Vec::<String>::new());
        assert_eq!(ids(&q.list(None, T0)), ["0", "2"]);
        let w = log.warnings.borrow().clone();
        assert_eq!(w.len(), 2, "one warning per entry, once: {w:?}");
        for (msg, id) in w.iter().zip(["\"1\"", "\"3\""]) {
            assert!(msg.contains(KEY) && msg.contains(id), "{msg}");
        }
        // Removed from storage for good: the next page is quiet.
        let log2 = Rc::new(RecordingLog::default());
        assert_eq!(ids(&open(&s, &log2, T0).list(None, T0)), ["0", "2"]);
        assert_eq!(warnings(&log2), 0);
        // Taking checks too (another tab may have written the entry since).
        let mut e = letter("4", "ga4", T0);
        e.event_json = "[]".into();
        open(&s, &log2, T0).push(e, T0);
        let taken = q.take(None, T0);
        assert_eq!(ids(&taken.iter().collect::<Vec<_>>()), ["0", "2"]);
        assert_eq!(warnings(&log), 3);
        assert!(open(&s, &log2, T0).is_empty());
    }

    /// Opens a queue over `value` stored under the key and expects it discarded with one warning.
    fn assert_discarded(value: &str) {
        let (s, log) = setup();
        s.set(KEY, value).unwrap();
        let q = open(&s, &log, T0);
        assert!(q.is_empty(), "accepted {value:?}");
        let w = log.warnings.borrow();
        assert_eq!(w.len(), 1, "warnings for {value:?}: {w:?}");
        assert!(w[0].contains(KEY), "warning names the key: {}", w[0]);
        assert!(!q.is_memory_only());
        // Discarded for good: the next page load is quiet.
        let log2 = Rc::new(RecordingLog::default());
        assert!(open(&s, &log2, T0).is_empty());
        assert_eq!(warnings(&log2), 0);
    }

    fn real_value() -> String {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        for i in 0..3 {
            let mut e = letter(&i.to_string(), "relay", T0);
            e.message = "mess\tage\n".into();
            q.push(e, T0);
        }
        s.get(KEY).unwrap().unwrap()
    }

    #[test]
    fn foreign_and_garbage_values_are_discarded_with_one_warning() {
        for v in [
            "",
            "{\"foo\":1}",
            "[]",
            "null",
            "{}",
            r#"{"v":2}"#,
            r#"{"v":2,"entries":{}}"#,
            r#"{"v":2,"entries":[],"more":1}"#,
            r#"{"v":2,"entries":[]}x"#,
            "cadlq1",
            "cadlq1 0",
            "cadlq1 00\n",
            "cadlq1 +0\n",
            "cadlq1 1\n",
            "cadlq1 0\nextra",
            "cadlq1 0\n\n",
            "\u{0}\u{ffff}garbage\t\n",
        ] {
            assert_discarded(v);
        }
    }

    /// The previous release's `cadlq1` value is read as it was, quietly, and the next write
    /// replaces it by the current format.
    #[test]
    fn a_queue_stored_by_the_previous_release_is_read_and_migrated_on_the_next_write() {
        let (s, log) = setup();
        s.set(KEY, LEGACY).unwrap();
        let mut q = open(&s, &log, T0);
        let mut want: Vec<DeadLetter> = (0..3)
            .map(|i| {
                let mut e = letter(&i.to_string(), "relay", T0);
                e.message = "mess\tage\n".into();
                e
            })
            .collect();
        let got: Vec<DeadLetter> = q.list(None, T0).into_iter().cloned().collect();
        assert_eq!(got, want);
        assert_eq!(warnings(&log), 0);
        assert_eq!(s.get(KEY).unwrap().as_deref(), Some(LEGACY), "read only");

        q.push(letter("3", "ga4", T0), T0);
        want.push(letter("3", "ga4", T0));
        let stored = s.get(KEY).unwrap().unwrap();
        assert_eq!(entry_count(&stored), 4);
        let got: Vec<DeadLetter> = open(&s, &log, T0)
            .list(None, T0)
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(got, want);
        assert_eq!(warnings(&log), 0);
    }

    #[test]
    fn a_wrong_version_is_discarded() {
        let v = real_value();
        assert_discarded(&v.replacen(r#""v":2"#, r#""v":3"#, 1));
        assert_discarded(&v.replacen(r#""v":2"#, r#""v":1"#, 1));
        assert_discarded(&v.replacen(r#""v":2"#, r#""v":"2""#, 1));
        assert_discarded(&v.replacen(r#""v":2,"#, "", 1));
        assert_discarded(&LEGACY.replacen("cadlq1", "cadlq2", 1));
        assert_discarded(&LEGACY.replacen("cadlq1", "CADLQ1", 1));
        assert_discarded(&LEGACY.replacen("cadlq1 ", "cadlq1  ", 1));
    }

    #[test]
    fn every_truncation_of_a_real_value_is_discarded() {
        for v in [real_value(), LEGACY.to_string()] {
            for cut in (0..v.len()).filter(|&i| v.is_char_boundary(i)) {
                assert_discarded(&v[..cut]);
            }
        }
    }

    #[test]
    fn malformed_fields_are_discarded() {
        let v = real_value();
        let bad = [
            v.replacen(r#""server""#, r#""sever""#, 1),
            v.replacen(r#""server""#, r#""Server""#, 1),
            v.replacen(":503,", ":0503,", 1),
            v.replacen(":503,", ":70000,", 1),
            v.replacen(":503,", ":-1,", 1),
            v.replacen(":503,", ":503.5,", 1),
            v.replacen(r#""attempts":4"#, r#""attempts":99999999999"#, 1),
            v.replacen(r#""attempts":4,"#, "", 1),
            v.replacen(r#""id":"0""#, r#""id":0"#, 1),
            v.replacen("mess", "mess\\q", 1),
            v.replacen("mess", "mess\r", 1),
            v.replacen(r#""id":"0","#, r#""id":"0","extra":1,"#, 1),
        ];
        for b in bad {
            assert_discarded(&b);
        }
        // The same for the previous release's lines.
        let line = LEGACY.lines().nth(1).unwrap();
        let mut bad = vec![
            line.replacen("server", "sever", 1),
            line.replacen("503", "0503", 1),
            line.replacen("503", "70000", 1),
            line.replacen("503", "-1", 1),
            line.replacen("\t4\t", "\t\t", 1),
            line.replacen("\t4\t", "\t99999999999\t", 1),
            line.replacen("mess", "mess\\q", 1),
            line.replacen("mess", "mess\r", 1),
            line.replacen("relay", "relay\\", 1),
            line.splitn(9, '\t').take(8).collect::<Vec<_>>().join("\t"),
        ];
        bad.push(format!("{line}\r"));
        for l in bad {
            assert_discarded(&format!("cadlq1 1\n{l}\n"));
        }
        // The untouched values are accepted, so the mutations above are what got rejected.
        for good in [v, format!("cadlq1 1\n{line}\n")] {
            let (s, log) = setup();
            s.set(KEY, &good).unwrap();
            assert!(!open(&s, &log, T0).is_empty());
        }
    }

    #[test]
    fn random_bytes_never_panic_and_warn_at_most_once() {
        let mut rng = SeededRng::new(99);
        for real in [real_value(), LEGACY.to_string()] {
            for round in 0..3000 {
                let value = if round % 2 == 0 {
                    let n = (rng.next_u32() % 200) as usize;
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    // A real value with one byte changed to a random ASCII byte.
                    let mut bytes = real.clone().into_bytes();
                    let i = rng.next_u32() as usize % bytes.len();
                    bytes[i] = (rng.next_u32() % 128) as u8;
                    String::from_utf8_lossy(&bytes).into_owned()
                };
                let (s, log) = setup();
                s.set(KEY, &value).unwrap();
                let _ = open(&s, &log, T0);
                let decoded = decode(&value);
                assert_eq!(warnings(&log), usize::from(decoded.is_none()), "{value:?}");
                // What is accepted is written back as exactly the entries read.
                if let Some(entries) = decoded {
                    let texts: Vec<String> = entries
                        .iter()
                        .map(|e| crate::stored::to_string(e).unwrap())
                        .collect();
                    assert_eq!(decode(&encode(&texts)), Some(entries));
                }
            }
        }
    }

    #[test]
    fn a_full_quota_evicts_the_oldest_keeps_the_newest_that_fit_and_warns_once() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        q.push(letter("0", "ga4", T0), T0);
        let one_entry = s.get(KEY).unwrap().unwrap().len() - EMPTY.len();
        // Room for the document and three entries (two commas), not four.
        s.set_quota(Some(
            KEY.len() + EMPTY.len() + 3 * one_entry + 2 + one_entry / 2,
        ));
        for i in 1..8 {
            q.push(letter(&i.to_string(), "ga4", T0), T0);
        }
        assert_eq!(ids(&q.list(None, T0)), ["5", "6", "7"]);
        assert_eq!(q.dropped(), 5);
        assert!(!q.is_memory_only());
        let w = log.warnings.borrow().clone();
        assert_eq!(w.len(), 1, "one warning for the drops: {w:?}");
        assert!(w[0].contains("storage quota"), "{w:?}");
        assert_eq!(ids(&open(&s, &log, T0).list(None, T0)), ["5", "6", "7"]);
    }

    #[test]
    fn a_quota_filled_by_other_data_keeps_every_entry_in_memory_with_one_warning() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        q.push(letter("0", "ga4", T0), T0);
        // Another script fills the storage: not even the newest entry fits any more.
        let used = KEY.len() + s.get(KEY).unwrap().unwrap().len();
        s.set("other-app", &"x".repeat(64)).unwrap();
        s.set_quota(Some(used + "other-app".len() + 64 - 1));
        q.push(letter("1", "ga4", T0), T0);
        q.push(letter("2", "ga4", T0), T0);
        assert_eq!(ids(&q.list(None, T0)), ["0", "1", "2"], "nothing lost");
        assert!(q.is_memory_only());
        assert_eq!(q.dropped(), 0);
        assert_eq!(warnings(&log), 1);
    }

    #[test]
    fn held_writes_are_deferred_to_one_write_on_release() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        q.hold();
        for i in 0..3 {
            q.push(letter(&i.to_string(), "ga4", T0), T0);
        }
        assert_eq!(s.get(KEY).unwrap(), None, "nothing written while held");
        q.release();
        assert_eq!(ids(&open(&s, &log, T0).list(None, T0)), ["0", "1", "2"]);
    }

    #[test]
    fn a_quota_too_small_for_an_empty_queue_goes_memory_only_with_one_warning() {
        let (s, log) = setup();
        s.set_quota(Some(KEY.len() + 3));
        let mut q = open(&s, &log, T0);
        for i in 0..5 {
            q.push(letter(&i.to_string(), "ga4", T0), T0);
        }
        assert!(q.is_memory_only());
        assert_eq!(warnings(&log), 1);
        assert!(log.warnings.borrow()[0].contains(KEY));
        assert_eq!(q.len(), 5, "nothing evicted: memory holds it all");
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn a_broken_storage_goes_memory_only_with_one_warning_and_keeps_working() {
        let (s, log) = setup();
        s.set_broken(true);
        let mut q = open(&s, &log, T0);
        assert!(q.is_memory_only());
        for i in 0..4 {
            q.push(
                letter(&i.to_string(), if i % 2 == 0 { "a" } else { "b" }, T0),
                T0,
            );
        }
        assert_eq!(ids(&q.list(Some("a"), T0)), ["0", "2"]);
        assert_eq!(q.take(Some("b"), T0).len(), 2);
        assert_eq!(q.clear(None), 2);
        assert_eq!(warnings(&log), 1);
    }

    #[test]
    fn storage_breaking_mid_page_switches_to_memory_once_and_removes_nothing() {
        let (s, log) = setup();
        let mut q = open(&s, &log, T0);
        q.push(letter("0", "ga4", T0), T0);
        s.set_broken(true);
        q.push(letter("1", "ga4", T0), T0);
        q.push(letter("2", "ga4", T0), T0);
        assert!(q.is_memory_only());
        assert_eq!(warnings(&log), 1);
        assert_eq!(ids(&q.list(None, T0)), ["0", "1", "2"]);
        // Healed storage is not used again during this page.
        s.set_broken(false);
        q.clear(None);
        assert!(s.get(KEY).unwrap().is_some());
    }

    fn random_text(rng: &mut SeededRng, json: bool) -> String {
        const PIECES: [&str; 10] = ["a", "Z9", "\t", "\\", "\"", "é", "\\n", " ", "{}", "\n"];
        let n = rng.next_u32() % 6;
        (0..n)
            .map(|_| PIECES[rng.next_u32() as usize % if json { 9 } else { 10 }])
            .collect()
    }

    fn random_letter(rng: &mut SeededRng, now: u64) -> DeadLetter {
        const KINDS: [ErrorKind; 4] = [
            ErrorKind::Server,
            ErrorKind::Network,
            ErrorKind::Unknown,
            ErrorKind::RateLimit,
        ];
        let age = u64::from(rng.next_u32() % 50);
        DeadLetter {
            id: random_text(rng, false),
            destination: ["ga4", "posthog", "relay"][rng.next_u32() as usize % 3].into(),
            event_json: random_text(rng, true),
            kind: KINDS[rng.next_u32() as usize % 4],
            message: random_text(rng, false),
            status: (rng.next_u32() % 2 == 0).then(|| (rng.next_u32() % 600) as u16),
            attempts: rng.next_u32() % 5,
            first_failed_at: now.saturating_sub(age + 10),
            last_failed_at: now.saturating_sub(age),
        }
    }

    /// Random push/take/clear/advance/reopen sequences: the bound always holds and every entry
    /// ever pushed is accounted for exactly once.
    #[test]
    fn random_sequences_keep_the_bound_and_conserve_entries() {
        let mut rng = SeededRng::new(2024);
        for seq in 0..1500 {
            let (s, log) = setup();
            let quota_run = seq % 4 == 3;
            if quota_run {
                s.set_quota(Some(20 + (rng.next_u32() % 600) as usize));
            }
            let mut config = DeadLetterConfig {
                storage_key: KEY.into(),
                max_size: (rng.next_u32() % 8) as usize,
                ttl_ms: 50 + u64::from(rng.next_u32() % 200),
            };
            let mut now = T0;
            let mut q = open_with(config.clone(), &s, &log, now);
            let (mut pushed, mut taken, mut cleared) = (0u64, 0u64, 0u64);
            let (mut past_dropped, mut past_expired) = (0u64, 0u64);
            // Queues (this one and those reopened before) that dropped entries: each warned once.
            let mut past_dropping = 0usize;
            for _ in 0..40 {
                let dest = [None, Some("ga4"), Some("relay")][rng.next_u32() as usize % 3];
                match rng.next_u32() % 10 {
                    0..=4 => {
                        q.push(random_letter(&mut rng, now), now);
                        pushed += 1;
                    }
                    5 => taken += q.take(dest, now).len() as u64,
                    6 => cleared += q.clear(dest) as u64,
                    7 | 8 => now += u64::from(rng.next_u32() % 120),
                    _ if !q.is_memory_only() => {
                        let before: Vec<DeadLetter> =
                            q.list(None, now).into_iter().cloned().collect();
                        past_dropped += q.dropped();
                        past_dropping += usize::from(q.dropped() > 0);
                        past_expired += q.expired();
                        config.max_size = (rng.next_u32() % 8) as usize;
                        q = open_with(config.clone(), &s, &log, now);
                        let after: Vec<DeadLetter> =
                            q.list(None, now).into_iter().cloned().collect();
                        let keep = before.len().min(config.max_size);
                        assert_eq!(after, before[before.len() - keep..], "seq {seq}");
                    }
                    _ => {}
                }
                assert!(q.len() <= config.max_size, "seq {seq}");
                let dropped = past_dropped + q.dropped();
                let expired = past_expired + q.expired();
                assert_eq!(
                    pushed,
                    q.len() as u64 + dropped + expired + taken + cleared,
                    "seq {seq}"
                );
                let dropping = past_dropping + usize::from(q.dropped() > 0);
                if !quota_run {
                    assert_eq!(warnings(&log), dropping, "seq {seq}");
                }
                // A quota run may also fall back to memory, with one more warning.
                assert!(warnings(&log) <= dropping + 1, "seq {seq}");
            }
        }
    }
}
