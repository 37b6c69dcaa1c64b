//! TEMP stub
#![allow(missing_docs)]
use crate::error::ErrorKind;
use crate::ports::{Log, Storage};
use std::rc::Rc;
#[derive(Clone, Debug)]
pub struct DeadLetterConfig {
    pub storage_key: String,
    pub max_size: usize,
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
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub id: String,
    pub destination: String,
    pub event_json: String,
    pub kind: ErrorKind,
    pub message: String,
    pub status: Option<u16>,
    pub attempts: u32,
    pub first_failed_at: u64,
    pub last_failed_at: u64,
}
pub struct DeadLetterQueue {
    e: Vec<DeadLetter>,
}
impl DeadLetterQueue {
    pub fn open(_c: DeadLetterConfig, _s: Rc<dyn Storage>, _l: Rc<dyn Log>, _now: u64) -> Self {
        DeadLetterQueue { e: vec![] }
    }
    pub fn push(&mut self, e: DeadLetter, _now: u64) {
        self.e.push(e)
    }
    pub fn list(&self, d: Option<&str>, _now: u64) -> Vec<&DeadLetter> {
        self.e
            .iter()
            .filter(|x| d.is_none_or(|d| x.destination == d))
            .collect()
    }
    pub fn take(&mut self, d: Option<&str>, _now: u64) -> Vec<DeadLetter> {
        let (a, b) = self
            .e
            .drain(..)
            .partition(|x| d.is_none_or(|d| x.destination == d));
        self.e = b;
        a
    }
    pub fn clear(&mut self, d: Option<&str>) -> usize {
        let n = self.e.len();
        self.e.retain(|x| !d.is_none_or(|d| x.destination == d));
        n - self.e.len()
    }
}
