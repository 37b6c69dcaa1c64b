//! The small traits the deciding logic runs over: clock, randomness, key-value storage and
//! logging. The browser implements them in `web`; tests use the fakes at the bottom.

use std::cell::{Cell, RefCell};

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    /// The current time in ms since the epoch.
    fn now_ms(&self) -> u64;
}

/// A source of random numbers (jitter, ids). Deterministic in tests.
pub trait Rng {
    /// The next uniformly distributed 32-bit value.
    fn next_u32(&mut self) -> u32;

    /// A uniformly distributed value in `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        f64::from(self.next_u32()) / 4_294_967_296.0
    }
}

/// Why a storage operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// Storage is disabled, missing or throws on access (e.g. blocked cookies, sandboxed frame).
    Unavailable,
    /// The write did not fit in the quota.
    QuotaExceeded,
}

impl StorageError {
    /// The failure as a short message, e.g. `storage quota exceeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageError::Unavailable => "storage unavailable",
            StorageError::QuotaExceeded => "storage quota exceeded",
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string key-value store with the semantics of `window.localStorage`, where every call may fail.
pub trait Storage {
    /// Reads a value; `Ok(None)` when the key is absent.
    fn get(&self, key: &str) -> Result<Option<String>, StorageError>;
    /// Writes a value.
    fn set(&self, key: &str, value: &str) -> Result<(), StorageError>;
    /// Removes a key (absent keys are fine).
    fn remove(&self, key: &str) -> Result<(), StorageError>;
    /// Every key starting with `prefix`, in no particular order.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
}

/// Where warnings and debug lines go (the console in the browser).
pub trait Log {
    /// A warning a page author should see (`console.warn`).
    fn warn(&self, msg: &str);
    /// A debug line, only emitted when `debug: true` (`console.log`).
    fn debug(&self, msg: &str);
}

/// A process-local storage for tests (the browser's memory stand-in is `WebStorage::memory`).
/// `quota` bounds the total bytes of keys plus values, to simulate a full localStorage.
#[derive(Default)]
pub struct MemoryStorage {
    /// In insertion order, found by a linear search (smaller in the wasm than a sorted Vec or a
    /// BTreeMap; it holds few keys: the identity and undelivered relay events).
    map: RefCell<Vec<(String, String)>>,
    quota: Cell<Option<usize>>,
    broken: Cell<bool>,
}

impl MemoryStorage {
    /// An empty, unbounded store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits the bytes this store holds; writes beyond it fail with `QuotaExceeded`.
    pub fn set_quota(&self, bytes: Option<usize>) {
        self.quota.set(bytes);
    }

    /// Makes every call fail with `Unavailable` (a disabled storage), or heals it.
    pub fn set_broken(&self, broken: bool) {
        self.broken.set(broken);
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.map.borrow().iter().position(|(k, _)| k == key)
    }

    fn used_without(&self, key: &str) -> usize {
        self.map
            .borrow()
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        if self.broken.get() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.find(key).map(|i| self.map.borrow()[i].1.clone()))
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StorageError> {
        if self.broken.get() {
            return Err(StorageError::Unavailable);
        }
        if let Some(q) = self.quota.get() {
            if self.used_without(key) + key.len() + value.len() > q {
                return Err(StorageError::QuotaExceeded);
            }
        }
        match self.find(key) {
            Some(i) => self.map.borrow_mut()[i].1 = value.into(),
            None => self.map.borrow_mut().push((key.into(), value.into())),
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StorageError> {
        if self.broken.get() {
            return Err(StorageError::Unavailable);
        }
        if let Some(i) = self.find(key) {
            self.map.borrow_mut().remove(i);
        }
        Ok(())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        if self.broken.get() {
            return Err(StorageError::Unavailable);
        }
        Ok(self
            .map
            .borrow()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// A storage that falls back to memory, with one warning, where the real one fails (disabled,
/// blocked, full): callers never see an error. Per key: a value the real storage refused is
/// kept in memory and read from there first, so what was stored before the failure stays
/// readable, and every client of the page (they share the memory) reads the same values.
pub struct FallbackStorage {
    primary: std::rc::Rc<dyn Storage>,
    memory: std::rc::Rc<dyn Storage>,
    degraded: Cell<bool>,
    log: std::rc::Rc<dyn Log>,
}

impl FallbackStorage {
    /// Wraps `primary`, falling back to `memory` (a store that does not fail); `log` gets the
    /// one warning.
    pub fn new(
        primary: std::rc::Rc<dyn Storage>,
        memory: std::rc::Rc<dyn Storage>,
        log: std::rc::Rc<dyn Log>,
    ) -> Self {
        FallbackStorage {
            primary,
            memory,
            degraded: Cell::new(false),
            log,
        }
    }

    /// Whether it has fallen back to memory.
    pub fn degraded(&self) -> bool {
        self.degraded.get()
    }

    fn degrade(&self, e: StorageError) {
        if !self.degraded.replace(true) {
            self.log.warn(
                &[
                    "localStorage failed (",
                    e.as_str(),
                    "); keeping identity in memory for this page",
                ]
                .concat(),
            );
        }
    }

    /// Reads a value (`None` when absent or unreadable): the one kept in memory, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Ok(Some(v)) = self.memory.get(key) {
            return Some(v);
        }
        match self.primary.get(key) {
            Ok(v) => v,
            Err(e) => {
                self.degrade(e);
                None
            }
        }
    }

    /// Writes a value: to the real storage, else to memory, and then the real storage's older
    /// value is removed so that it cannot come back (after a reload, say: the user id and the
    /// traits must not come from two different users). (The memory copy goes first: the real
    /// storage may be that same memory when localStorage was unavailable from the start.)
    pub fn set(&self, key: &str, value: &str) {
        let _ = self.memory.remove(key);
        if let Err(e) = self.primary.set(key, value) {
            self.degrade(e);
            let _ = self.primary.remove(key);
            let _ = self.memory.set(key, value);
        }
    }

    /// Forgets the memory copy of `key`: another tab wrote the real storage since.
    pub fn forget_copy(&self, key: &str) {
        let _ = self.memory.remove(key);
    }

    /// Removes a value, from memory and from the real storage.
    pub fn remove(&self, key: &str) {
        let _ = self.memory.remove(key);
        if let Err(e) = self.primary.remove(key) {
            self.degrade(e);
        }
    }
}

/// A deterministic xorshift generator, seeded; used in tests and as a jitter source.
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng(seed.max(1))
    }
}

impl Rng for SeededRng {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as u32
    }
}

/// A clock that only moves when told to: tests advance it instead of sleeping.
#[derive(Default)]
pub struct FakeClock(Cell<u64>);

impl FakeClock {
    /// A clock standing at `ms`.
    pub fn at(ms: u64) -> Self {
        FakeClock(Cell::new(ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

/// A logger that records lines, for asserting on warnings in tests.
#[derive(Default)]
pub struct RecordingLog {
    /// Every warning, in order.
    pub warnings: RefCell<Vec<String>>,
    /// Every debug line, in order.
    pub debugs: RefCell<Vec<String>>,
}

impl Log for RecordingLog {
    fn warn(&self, msg: &str) {
        self.warnings.borrow_mut().push(msg.into());
    }
    fn debug(&self, msg: &str) {
        self.debugs.borrow_mut().push(msg.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_enforces_quota_and_breakage() {
        let s = MemoryStorage::new();
        s.set_quota(Some(10));
        assert_eq!(s.set("a", "12345"), Ok(()));
        assert_eq!(s.set("b", "123456"), Err(StorageError::QuotaExceeded));
        // Overwriting the same key counts only the new value.
        assert_eq!(s.set("a", "123456789"), Ok(()));
        s.set_broken(true);
        assert_eq!(s.get("a"), Err(StorageError::Unavailable));
        s.set_broken(false);
        assert_eq!(s.get("a").unwrap().as_deref(), Some("123456789"));
        assert_eq!(s.keys_with_prefix("a").unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn fallback_storage_degrades_once_with_one_warning_and_keeps_working() {
        let primary = std::rc::Rc::new(MemoryStorage::new());
        let log = std::rc::Rc::new(RecordingLog::default());
        let memory = std::rc::Rc::new(MemoryStorage::new());
        let s = FallbackStorage::new(primary.clone(), memory.clone(), log.clone());
        s.set("k", "1");
        assert_eq!(primary.get("k").unwrap().as_deref(), Some("1"));
        primary.set_broken(true);
        s.set("k", "2");
        s.set("j", "3");
        assert_eq!(s.get("k").as_deref(), Some("2"));
        assert_eq!(s.get("j").as_deref(), Some("3"));
        assert!(s.degraded());
        assert_eq!(memory.get("j").unwrap().as_deref(), Some("3"));
        assert_eq!(log.warnings.borrow().len(), 1);
    }

    /// A full storage refuses only some values: what it holds stays readable, what it refused
    /// is read from memory, by every client sharing that memory, until a later write fits.
    #[test]
    fn fallback_storage_keeps_per_key_values_readable_by_every_client() {
        let primary = std::rc::Rc::new(MemoryStorage::new());
        let log = std::rc::Rc::new(RecordingLog::default());
        let memory = std::rc::Rc::new(MemoryStorage::new());
        let a = FallbackStorage::new(primary.clone(), memory.clone(), log.clone());
        let b = FallbackStorage::new(primary.clone(), memory.clone(), log.clone());
        primary.set_quota(Some(20));
        a.set("u", "u1");
        a.set("t", &"x".repeat(30));
        assert_eq!(
            a.get("u").as_deref(),
            Some("u1"),
            "stored before the failure"
        );
        assert_eq!(a.get("t").map(|t| t.len()), Some(30));
        assert_eq!(b.get("t").map(|t| t.len()), Some(30), "another client");
        b.set("t", "small");
        assert_eq!(
            a.get("t").as_deref(),
            Some("small"),
            "a later write that fits"
        );
        assert_eq!(memory.get("t").unwrap(), None);
        a.remove("u");
        assert_eq!(b.get("u"), None);
        assert_eq!(log.warnings.borrow().len(), 1);
        // A refused write does not leave the older stored value behind.
        a.set("t", "small");
        a.set("t", &"y".repeat(30));
        assert_eq!(primary.get("t").unwrap(), None);
    }

    #[test]
    fn seeded_rng_is_deterministic_and_unit_in_range() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        for _ in 0..1000 {
            let x = a.next_unit();
            assert_eq!(x, b.next_unit());
            assert!((0.0..1.0).contains(&x));
        }
    }
}
