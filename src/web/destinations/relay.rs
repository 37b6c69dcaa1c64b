//! The `relay` destination: forwards events in batches to the site's backend in the Segment /
//! RudderStack HTTP batch format (`POST endpoint` with `{"batch":[...],"sentAt":...}`), keeping
//! every accepted event in the durable outbox ([`crate::outbox`]) until a 2xx answer.
//!
//! Browser side only: settings, and the requests, `sendBeacon` ([`crate::web::net`]) and Web
//! Locks ([`crate::web::locks`]). Which entries are whose, adoption, ordering and the wire
//! format live in `outbox` and are tested natively.
//!
//! - `deliver` POSTs one batch with `Content-Type: application/json`, `Authorization: Basic
//!   base64(writeKey + ':')` when a writeKey is set, and the configured headers.
//!   A redirect answer is not followed (only the configured endpoint receives events) and does
//!   not acknowledge the batch: it is a `validation` failure, not retried.
//! - `test` (`testDestination`) POSTs an empty batch and reports whether the answer was 2xx.
//! - At page hide, `beacon` hands unsent events to `navigator.sendBeacon` in chunks within
//!   `maxBatchBytes` and 64 KB (each a complete batch, sent as `text/plain`), or to
//!   `fetch(..., {keepalive: true})` when `sendBeacon` is missing, turned off (`beacon: false`)
//!   or cannot carry the configured headers. Both share the page's 64 KB of keepalive bodies in
//!   flight (with every other script's beacons): a refused beacon ends the hand-over, keepalive
//!   fetches are sized to what this page's own leave, and what is not handed over stays in the
//!   outbox for a later page. Which events are handed over, and whether they are then
//!   forgotten or kept in the outbox for a later page, is the manager's decision
//!   ([`crate::manager::BEACON_TRUST_MS`]): nothing while offline or after a failed delivery;
//!   forgotten when the hand-over is a beacon and the last delivery was acknowledged
//!   recently; otherwise handed over and kept (a later page sends them again with the same
//!   messageId). A keepalive fetch may be refused after the page is gone, so its events are
//!   always kept, and forgotten once it answers 2xx or the page delivered them meanwhile.
//! - Ownership between tabs: each instance owns its entries and holds the Web Lock
//!   `<prefix>:outbox:<owner>` for the page's life; on load it adopts the entries of owners
//!   whose lock it can take at once (their page is gone), and keeps that lock too: a tab
//!   loading at the same moment whose localStorage does not show the re-keyed entries yet
//!   finds the old owner taken. Without `navigator.locks` it falls back
//!   to a heartbeat per owner in localStorage every [`HEARTBEAT_MS`], removed when the page is
//!   discarded (`pagehide` not kept in the back/forward cache), and adopts only owners whose
//!   heartbeat is gone or older than three periods (two tabs loading at the same moment may
//!   then both adopt the same entries; their messageId lets the backend drop the copy).
//!   Trade-off: Chromium lists a held Web Lock among the features that keep a page out of the
//!   back/forward cache, so pages with a relay are restored by a reload on Back.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;

use crate::error::{DeliveryError, ErrorKind};
use crate::manager::BatchLimits;
use crate::outbox::{batch_body, beacon_chunks, owner_id, Outbox, BEACON_MAX_BYTES, HEARTBEAT_MS};
use crate::web::config::de::{from_value, AtLeastOne, PATH};
use crate::web::config::DestConfig;
use crate::web::dest::{CreateEnv, Destination, Done, Event, LoadEnv, Restored};
use crate::web::locks::{heartbeat, LockManager};
use crate::web::net::{self, Answer, Failure, Post};
use crate::web::platform::{iso_now, now, uuid, Local};

/// A relay's `settings` (SPEC section 6).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct Settings {
    endpoint: Option<String>,
    headers: Option<Headers>,
    write_key: Option<String>,
    batch_size: Option<AtLeastOne>,
    max_batch_bytes: Option<AtLeastOne>,
    flush_interval_ms: Option<u64>,
    beacon: Option<bool>,
}

/// `settings.headers`, in the object's order: names that are HTTP tokens, values fetch can
/// send. Either refused at load would make every request throw, then fail as `network`.
struct Headers(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some((HeaderName(k), HeaderValue(v))) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A header name: an RFC 7230 token (`tchar`s, at least one).
struct HeaderName(String);

impl<'de> serde::Deserialize<'de> for HeaderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if is_token(&name) {
            Ok(HeaderName(name))
        } else {
            Err(serde::de::Error::custom(
                [PATH, " is not a valid header name (an HTTP token)"].concat(),
            ))
        }
    }
}

/// A header value: a string without CR, LF or NUL, in Latin-1 (what fetch's `Headers` takes).
struct HeaderValue(String);

impl<'de> serde::Deserialize<'de> for HeaderValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        if value
            .chars()
            .any(|c| matches!(c, '\r' | '\n' | '\0') || c > '\u{ff}')
        {
            Err(serde::de::Error::custom(
                [
                    PATH,
                    " must not contain CR, LF, NUL or a character beyond U+00FF",
                ]
                .concat(),
            ))
        } else {
            Ok(HeaderValue(value))
        }
    }
}

/// Whether `s` is an HTTP token (RFC 7230 section 3.2.6): one or more `tchar`s.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A relay instance. See the module docs.
pub struct Relay {
    endpoint: Rc<str>,
    /// Every request header: Content-Type, Authorization, then the configured ones.
    headers: Rc<[(String, String)]>,
    /// Whether `settings.headers` is non-empty (`sendBeacon` cannot send headers).
    custom_headers: bool,
    write_key: Option<String>,
    limits: BatchLimits,
    use_beacon: bool,
    /// `<prefix>:outbox:`, the start of every owner's lock name.
    lock_base: String,
    outbox: Rc<RefCell<Outbox>>,
    /// Events handed to a keepalive fetch at page hide, and whether this page has delivered
    /// them meanwhile: forgotten when it answers 2xx, or when it settles if delivered.
    deferred: Rc<RefCell<Deferred>>,
    /// `maxBatchBytes`: the largest request body (a page-hide chunk too).
    max_body: usize,
    /// Events of keepalive hand-overs answered 2xx while the page runs, for the engine to
    /// take out of the queue ([`Destination::take_acked`]).
    acked: Rc<RefCell<Vec<Rc<str>>>>,
    /// `loading.timeoutMs`: a request still unanswered then is aborted (it is retried).
    timeout_ms: u64,
}

/// Creates the destination for `entry`, validating its settings; errors name the field
/// (`config.destinations[0].settings.endpoint`).
pub fn create(entry: &DestConfig, env: &CreateEnv) -> Result<Rc<dyn Destination>, String> {
    let prefix = env.prefix.as_str();
    let path = entry.settings_path();
    let s: Settings = from_value(&entry.settings, &path)?;
    let Some(raw) = s.endpoint else {
        return Err([
            &path,
            ".endpoint is required (the URL of the batch endpoint)",
        ]
        .concat());
    };
    // An empty endpoint would resolve to the page itself, whose HTML 200 is no acknowledgement.
    let Some(endpoint) = resolve_http(&raw).filter(|_| !raw.trim().is_empty()) else {
        return Err([&path, ".endpoint must be an http(s) URL, got '", &raw, "'"].concat());
    };
    let write_key = s.write_key;
    let mut headers = net::base_headers(write_key.as_deref());
    let custom = s.headers.map(|h| h.0).unwrap_or_default();
    let custom_headers = !custom.is_empty();
    for (k, v) in &custom {
        net::set_header(&mut headers, k, v);
    }
    // A body is the events, a comma between two, and this wrapper (`sentAt` always has 24
    // characters): `maxBatchBytes` bounds the whole body.
    let wrapper = batch_body(&[], "0000-00-00T00:00:00.000Z", write_key.as_deref()).len();
    let max_body = s.max_batch_bytes.map_or(512_000, |n| n.0) as usize;
    let limits = BatchLimits {
        max_events: s.batch_size.map_or(20, |n| n.0) as usize,
        max_bytes: max_body.saturating_sub(wrapper),
        interval_ms: s.flush_interval_ms.unwrap_or(1000),
    };
    let use_beacon = s.beacon.unwrap_or(true);
    let owner = owner_id(now(), &uuid());
    let outbox = Rc::new(RefCell::new(
        Outbox::new(
            env.storage.clone(),
            env.log.clone(),
            prefix,
            &entry.id,
            owner,
        )
        .for_endpoint(&endpoint),
    ));
    Ok(Rc::new(Relay {
        endpoint: endpoint.into(),
        headers: headers.into(),
        custom_headers,
        write_key,
        limits,
        use_beacon,
        lock_base: [prefix, ":outbox:"].concat(),
        outbox,
        deferred: Default::default(),
        max_body,
        acked: Default::default(),
        timeout_ms: env.timeout_ms,
    }))
}

/// `url` resolved against the document's base URL (as `fetch` resolves it), if it is http(s).
fn resolve_http(url: &str) -> Option<String> {
    let (href, protocol, _) = crate::web::platform::resolve_url(url)?;
    matches!(protocol.as_str(), "http:" | "https:").then_some(href)
}

/// The JSON text of each event.
fn jsons(events: &[Event]) -> Vec<&str> {
    let mut out = Vec::new();
    for e in events {
        out.push(&*e.json);
    }
    out
}

impl Relay {
    /// POSTs `body` (with `keepalive` at page hide) and calls `k` with the outcome once it is
    /// answered. A request not answered within `loading.timeoutMs` is aborted, so a retry never
    /// runs beside it (the engine reports the timeout).
    fn request(&self, body: String, keepalive: bool, k: Done) {
        // At page hide the page may be gone before any answer: no timeout then.
        let timeout_ms = if keepalive { 0 } else { self.timeout_ms };
        let len = if keepalive { body.len() } else { 0 };
        KEEPALIVE.with(|n| *n.borrow_mut() += len);
        let (url, headers) = (self.endpoint.clone(), self.headers.clone());
        spawn_local(async move {
            let answer = net::post(&Post {
                url: &url,
                body: &body,
                headers: &headers,
                keepalive,
                timeout_ms,
            })
            .await;
            KEEPALIVE.with(|n| *n.borrow_mut() -= len);
            k(outcome(answer))
        });
    }

    /// The batch body of `events` (none for `testDestination`), sent now.
    fn body(&self, events: &[&str]) -> String {
        batch_body(events, &iso_now(), self.write_key.as_deref())
    }

    /// Whether the browser taking a hand-over at page hide means it will be sent: true for
    /// `sendBeacon`, which refuses at once what it will not send. A keepalive fetch can be
    /// refused after the page is gone (the page's 64 KB of keepalive bodies in flight is
    /// shared with every beacon of the page), so its events stay kept until it answers 2xx.
    fn sure(&self) -> bool {
        self.use_beacon && !self.custom_headers && net::can_beacon()
    }

    /// Hands chunks (within `maxBatchBytes` and 64 KB) to `sendBeacon`, or to keepalive
    /// fetches that fit in what this page's own leave of the 64 KB; returns how many events
    /// (a prefix) the browser took. A refused beacon ends the hand-over: the rest stays queued.
    fn hand_over(&self, events: &[Event]) -> usize {
        let chunks = beacon_chunks(
            &jsons(events),
            &iso_now(),
            self.write_key.as_deref(),
            self.max_body.min(BEACON_MAX_BYTES),
        );
        let beacon = self.sure();
        let mut sent = 0;
        for (n, body) in chunks {
            if beacon {
                if !net::send_beacon(&self.endpoint, &body) {
                    break;
                }
            } else {
                if body.len() + KEEPALIVE.with(|k| *k.borrow()) > BEACON_MAX_BYTES {
                    break;
                }
                let mut ids = Vec::new();
                for e in &events[sent..sent + n] {
                    ids.push(e.message_id.clone());
                    self.deferred
                        .borrow_mut()
                        .push((e.message_id.clone(), false));
                }
                // Forgotten once the backend says 2xx, or once this page delivered them
                // meanwhile; if the page is gone by then, they stay in the outbox and a later
                // page delivers them (messageId dedupes).
                let (o, d, a) = (
                    self.outbox.clone(),
                    self.deferred.clone(),
                    self.acked.clone(),
                );
                self.request(
                    body,
                    true,
                    Box::new(move |r| {
                        let mut o = o.borrow_mut();
                        d.borrow_mut().retain(|(id, done)| {
                            if !ids.contains(id) {
                                return true;
                            }
                            if r.is_ok() || *done {
                                o.forget(id);
                            }
                            false
                        });
                        if r.is_ok() {
                            a.borrow_mut().extend(ids);
                        }
                    }),
                );
            }
            sent += n;
        }
        sent
    }
}

/// Events a keepalive fetch of page hide carries, each with whether the page delivered it
/// meanwhile.
type Deferred = Vec<(Rc<str>, bool)>;

/// Bytes of this page's keepalive fetches in flight (all relays of all clients): browsers
/// allow 64 KB of keepalive bodies in flight per page.
static KEEPALIVE: Local<usize> = Local::new(0);

/// The delivery result of a POST: 2xx is success; another status is an HTTP error (with
/// `Retry-After` on 429 and 503); a redirect is a `validation` failure, as the events were not
/// taken; no answer is a network error or a timeout.
fn outcome(answer: Result<Answer, Failure>) -> Result<(), DeliveryError> {
    match answer {
        Ok(Answer::Status {
            status: 200..=299, ..
        }) => Ok(()),
        Ok(Answer::Status {
            status,
            retry_after_ms,
        }) => Err(DeliveryError::http(status, retry_after_ms)),
        Ok(Answer::Redirect) => Err(redirected()),
        Err(Failure::TimedOut) => Err(DeliveryError::new(
            ErrorKind::Timeout,
            "relay request timed out (loading.timeoutMs)",
        )),
        Err(Failure::Failed(m)) => Err(DeliveryError::new(
            ErrorKind::Network,
            ["relay request failed: ", &m].concat(),
        )),
    }
}

/// The failure of a redirect answer: it is not followed with the events and does not
/// acknowledge them. Its `status` is 0, what the browser reports for it: a browser hides which
/// 3xx the endpoint answered (`opaqueredirect`), and a made-up 3xx would claim more than is
/// known.
fn redirected() -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Validation,
        message: "relay endpoint answered with a redirect (3xx), which is not followed: \
                  only the configured endpoint receives events"
            .into(),
        status: Some(0),
        retry_after_ms: None,
    }
}

impl Destination for Relay {
    fn load(self: Rc<Self>, _env: LoadEnv, done: Done) {
        done(Ok(()))
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>, done: Done) {
        self.request(self.body(&jsons(&events)), false, done)
    }

    fn test(self: Rc<Self>, done: Done) {
        self.request(self.body(&[]), false, done)
    }

    fn has_test(&self) -> bool {
        true
    }

    fn batch(&self) -> Option<BatchLimits> {
        Some(self.limits)
    }

    fn durable(&self) -> bool {
        true
    }

    fn store(&self, event: &Event, keep: bool) {
        let mut o = self.outbox.borrow_mut();
        if keep {
            o.put(event.message_id.clone(), &event.json);
            return;
        }
        // Delivered while a keepalive fetch of page hide still carries it: forgotten when
        // that one settles, whichever way.
        for (id, done) in self.deferred.borrow_mut().iter_mut() {
            if *id == event.message_id {
                *done = true;
                return;
            }
        }
        o.forget(&event.message_id);
    }

    fn restore(&self, done: Box<dyn FnOnce(Vec<Restored>)>) {
        let (outbox, lock_base) = (self.outbox.clone(), self.lock_base.clone());
        spawn_local(async move { done(claim(&outbox, &lock_base).await) });
    }

    fn beacon(&self, events: &[Event]) -> usize {
        self.hand_over(events)
    }

    fn sure_hand_over(&self) -> bool {
        self.sure()
    }

    fn take_acked(&self) -> Vec<Rc<str>> {
        std::mem::take(&mut *self.acked.borrow_mut())
    }
}

/// Takes this page's Web Lock `<lock_base><own owner>` for its life, then adopts the entries of
/// the owners whose page is gone: those whose lock it can take at once (and then keeps, so a
/// tab loading at the same moment finds them taken). When the browser refuses this page's lock,
/// nothing is adopted. Without Web Locks, the page beats every [`HEARTBEAT_MS`] and adopts the
/// owners whose heartbeat stopped.
async fn claim(outbox: &Rc<RefCell<Outbox>>, lock_base: &str) -> Vec<Restored> {
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    let Some(locks) = LockManager::get() else {
        let (o, l) = (outbox.clone(), outbox.clone());
        heartbeat(
            HEARTBEAT_MS as u32,
            move || o.borrow_mut().beat(now()),
            move || l.borrow_mut().leave(),
        );
        let owners = outbox.borrow_mut().other_owners();
        for owner in owners {
            let silent = outbox.borrow().is_silent(&owner, now());
            if silent {
                adopt(outbox, &owner, &mut seen, &mut got).await;
            }
        }
        return got;
    };
    let own = outbox.borrow().owner().to_string();
    if locks.hold(&[lock_base, &own].concat()).await.is_err() {
        return got;
    }
    let owners = outbox.borrow_mut().other_owners();
    // Listing the owners read every key of the storage (its first read on the page): the
    // adoption starts in a task of its own.
    yield_now().await;
    for owner in owners {
        let name = [lock_base, &owner].concat();
        if let Ok(true) = locks.hold_if_available(&name).await {
            adopt(outbox, &owner, &mut seen, &mut got).await;
        }
    }
    got
}

/// How many entries are adopted (read, re-keyed and parsed) in one task: a backlog of
/// thousands left by a closed tab is taken over in steps that each keep the main thread well
/// under 50 ms, the page's own tasks running in between.
const ADOPT_STEP: usize = 100;

/// Adopts `owner`'s entries into `got`, [`ADOPT_STEP`] at a time, yielding to the page's other
/// tasks in between; an event the browser cannot parse is discarded.
async fn adopt(
    outbox: &Rc<RefCell<Outbox>>,
    owner: &str,
    seen: &mut HashSet<String>,
    got: &mut Vec<Restored>,
) {
    let mut adoption = outbox.borrow_mut().adoption(owner);
    yield_now().await;
    loop {
        {
            let mut o = outbox.borrow_mut();
            for e in o.adopt_some(&mut adoption, ADOPT_STEP, seen) {
                match js_sys::JSON::parse(&e.json) {
                    Ok(v) if v.is_object() => got.push(Restored {
                        message_id: e.message_id,
                        json: e.json,
                        payload: v,
                    }),
                    _ => o.discard(e.seq),
                }
            }
        }
        if adoption.is_done() {
            return;
        }
        yield_now().await;
    }
}

/// Ends the current task: what follows runs in a later one (a macrotask), after the page's
/// input and rendering.
async fn yield_now() {
    gloo_timers::future::TimeoutFuture::new(0).await;
}
