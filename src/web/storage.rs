//! Web Storage behind the [`Storage`] port: `localStorage` and `sessionStorage` through
//! gloo-storage, and the page's memory stand-in for them when they are blocked.
//!
//! gloo-storage's `raw()` throws a JavaScript exception when the storage is blocked (disabled
//! cookies, a sandboxed frame, some private modes), so every operation first asks web-sys
//! whether the storage is there (`Window::local_storage` returns a `Result`) and only then
//! takes it from gloo. The `web_sys::Storage` methods return a `Result` for what the browser
//! throws (a full quota, a storage revoked meanwhile): nothing unwinds through the wasm.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

use gloo_storage::{LocalStorage, SessionStorage, Storage as _};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DomException;

use crate::ports::{Log, Storage, StorageError};

/// Which storage a [`WebStorage`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    /// `window.localStorage`.
    Local,
    /// `window.sessionStorage`.
    Session,
    /// The page's memory stand-in (see [`MEMORY`]).
    Memory,
}

thread_local! {
    /// The page's memory stand-in for a Web Storage that failed: one map for the whole page,
    /// shared by every client of it, its keys carrying their prefixes as in `localStorage`.
    /// Ordered, so that a prefix is a range.
    static MEMORY: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
}

/// `localStorage` or `sessionStorage`, looked up on every call so that a storage that throws
/// on access only ever yields [`StorageError::Unavailable`]; or the page's memory stand-in for
/// them, which never fails.
#[derive(Clone, Copy, Debug)]
pub struct WebStorage {
    area: Area,
}

impl WebStorage {
    /// `window.localStorage`.
    pub fn local() -> Self {
        WebStorage { area: Area::Local }
    }

    /// `window.sessionStorage`.
    pub fn session() -> Self {
        WebStorage {
            area: Area::Session,
        }
    }

    /// This page's memory, standing in for a storage that failed (one map for the page; the
    /// keys carry their prefixes). It never fails.
    pub fn memory() -> Self {
        WebStorage { area: Area::Memory }
    }

    /// Whether the browser storage of this area can be used now: web-sys reports a blocked
    /// storage as an `Err` (or `None`) where gloo's `raw()` would throw.
    fn available(&self) -> bool {
        let Some(window) = web_sys::window() else {
            return false;
        };
        let probe = match self.area {
            Area::Local => window.local_storage(),
            Area::Session => window.session_storage(),
            Area::Memory => return true,
        };
        matches!(probe, Ok(Some(_)))
    }

    /// The browser storage of this area, from gloo once web-sys found it available; `None` for
    /// the memory stand-in.
    fn browser(&self) -> Result<Option<web_sys::Storage>, StorageError> {
        if !self.available() {
            return Err(StorageError::Unavailable);
        }
        Ok(match self.area {
            Area::Local => Some(LocalStorage::raw()),
            Area::Session => Some(SessionStorage::raw()),
            Area::Memory => None,
        })
    }
}

/// The kind of failure of a thrown storage error: a full quota (`QuotaExceededError`, or
/// `NS_ERROR_DOM_QUOTA_REACHED` in older Firefox), else an unavailable storage.
fn storage_error(e: JsValue) -> StorageError {
    match e
        .dyn_ref::<DomException>()
        .map(DomException::name)
        .as_deref()
    {
        Some("QuotaExceededError" | "NS_ERROR_DOM_QUOTA_REACHED") => StorageError::QuotaExceeded,
        _ => StorageError::Unavailable,
    }
}

impl Storage for WebStorage {
    fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        match self.browser()? {
            Some(s) => s.get_item(key).map_err(storage_error),
            None => Ok(MEMORY.with_borrow(|m| m.get(key).cloned())),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StorageError> {
        match self.browser()? {
            Some(s) => s.set_item(key, value).map_err(storage_error),
            None => {
                MEMORY.with_borrow_mut(|m| m.insert(key.into(), value.into()));
                Ok(())
            }
        }
    }

    fn remove(&self, key: &str) -> Result<(), StorageError> {
        match self.browser()? {
            Some(s) => s.remove_item(key).map_err(storage_error),
            None => {
                MEMORY.with_borrow_mut(|m| m.remove(key));
                Ok(())
            }
        }
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let Some(s) = self.browser()? else {
            return Ok(MEMORY.with_borrow(|m| {
                m.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix))
                    .cloned()
                    .collect()
            }));
        };
        let mut keys = Vec::new();
        for i in 0..s.length().map_err(storage_error)? {
            if let Some(k) = s.key(i).map_err(storage_error)? {
                if k.starts_with(prefix) {
                    keys.push(k);
                }
            }
        }
        Ok(keys)
    }
}

/// `localStorage` when it works; otherwise (disabled, blocked, sandboxed) the memory stand-in
/// for this page, with one warning. Later failures (a full quota) are handled by each user.
pub fn local_storage_or_memory(log: &dyn Log) -> Rc<dyn Storage> {
    let local = WebStorage::local();
    match local.get("consent-analytics:probe") {
        Err(StorageError::Unavailable) => {
            log.warn(
                "localStorage is unavailable: identity, dead letters and the relay outbox are kept in memory for this page",
            );
            Rc::new(WebStorage::memory())
        }
        _ => Rc::new(local),
    }
}
