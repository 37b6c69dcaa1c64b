//! The destination manager: a sans-IO state machine that decides, for every destination, what
//! happens next — load it, deliver the next event or batch, wait for a retry or for the circuit
//! breaker, dead-letter, purge on revocation. The browser driver feeds it inputs (events,
//! consent changes, results, the time) and carries out the [`Command`]s it returns; tests do the
//! same with a fake clock, so every decision is tested natively and deterministically.
//!
//! Each destination has its own ordered queue and at most one delivery in flight, so one slow,
//! failing or hanging destination never delays or reorders another.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::consent::{Consent, Purposes};
use crate::error::{DeliveryError, ErrorKind};
use crate::event::{Envelope, EventKind};
use crate::ports::Rng;
use crate::retry::RetryPolicy;

/// When destinations are loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// On the first event routed to it (the default).
    Lazy,
    /// At start-up (and on a consent grant) for every allowed destination.
    Eager,
}

/// Manager-wide settings (from `loading`, `retry`, `circuitBreaker`, `purgeOnRevoke`).
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Lazy or eager loading.
    pub strategy: Strategy,
    /// Most events a destination holds undelivered; overflow is dead-lettered.
    pub buffer_limit: usize,
    /// Load retries after the first failed load.
    pub load_max_retries: u32,
    /// Delivery retry policy (also the backoff for load retries).
    pub retry: RetryPolicy,
    /// Circuit breaker settings, one breaker per destination.
    pub breaker: BreakerConfig,
    /// Whether revoking consent drops a destination's undelivered events and dead letters.
    pub purge_on_revoke: bool,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            strategy: Strategy::Lazy,
            buffer_limit: 1000,
            load_max_retries: 3,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            purge_on_revoke: true,
        }
    }
}

/// Batching limits of a destination that takes events in batches (the relay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Send when this many events are pending.
    pub max_events: usize,
    /// Send when the pending events' JSON reaches this many bytes.
    pub max_bytes: usize,
    /// Send at most this long after an event became pending.
    pub interval_ms: u64,
}

/// What the manager needs to know about one configured destination.
#[derive(Clone, Debug)]
pub struct DestSpec {
    /// Unique id (from config, defaults to the type).
    pub id: String,
    /// Purposes required to receive an event.
    pub required: Purposes,
    /// `Some` for a batching destination.
    pub batch: Option<BatchLimits>,
    /// Whether its undelivered events are persisted (the relay's outbox): the driver is told to
    /// persist and forget them through [`Command::Persist`] / [`Command::Forget`].
    pub durable: bool,
}

/// A destination's load state, as reported by `status()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// Known, not loaded yet.
    Registered,
    /// A load is under way (or waiting for its retry).
    Loading,
    /// Ready for events.
    Loaded,
    /// Every load attempt failed; `retry_destination` tries again.
    Failed,
    /// Consent for it is currently missing.
    Blocked,
    /// Unloaded by `unload_destination`.
    Unloaded,
}

impl LoadState {
    /// The state's name in `status()`.
    pub fn name(self) -> &'static str {
        match self {
            LoadState::Registered => "registered",
            LoadState::Loading => "loading",
            LoadState::Loaded => "loaded",
            LoadState::Failed => "failed",
            LoadState::Blocked => "blocked",
            LoadState::Unloaded => "unloaded",
        }
    }
}

/// An instruction for the driver.
#[derive(Debug)]
pub enum Command<P> {
    /// Load destination `dest` (inject its scripts, initialise it); answer with
    /// [`Manager::load_done`].
    Load {
        /// Destination index.
        dest: usize,
    },
    /// Deliver these events (one, or a batch) to `dest`; answer with [`Manager::delivery_done`].
    Deliver {
        /// Destination index.
        dest: usize,
        /// The events, in capture order.
        events: Vec<Rc<Envelope<P>>>,
    },
    /// Consent for `dest` was revoked: remove its injected scripts (those not marked
    /// `persistAfterConsentRevoked`).
    RemoveScripts {
        /// Destination index.
        dest: usize,
    },
    /// Destroy the instance of `dest` and remove its scripts (`unloadDestination`).
    Destroy {
        /// Destination index.
        dest: usize,
    },
    /// Events were delivered (acknowledged) by `dest`.
    Delivered {
        /// Destination index.
        dest: usize,
        /// The delivered events.
        events: Vec<Rc<Envelope<P>>>,
    },
    /// A delivery or load of `dest` failed (whether or not it will be retried).
    Failed {
        /// Destination index.
        dest: usize,
        /// What went wrong.
        error: DeliveryError,
    },
    /// Put this event into the dead-letter queue for `dest`.
    DeadLetter {
        /// Destination index.
        dest: usize,
        /// The event.
        event: Rc<Envelope<P>>,
        /// The last error.
        error: DeliveryError,
        /// Attempts made.
        attempts: u32,
        /// Time of the first failure.
        first_failed_at: u64,
        /// Time of the last failure.
        last_failed_at: u64,
    },
    /// `dest` became ready.
    Loaded {
        /// Destination index.
        dest: usize,
    },
    /// Persist an event accepted for a durable destination (before it is sent).
    Persist {
        /// Destination index.
        dest: usize,
        /// The event.
        event: Rc<Envelope<P>>,
    },
    /// Drop a persisted event (acknowledged, dead-lettered or purged).
    Forget {
        /// Destination index.
        dest: usize,
        /// The event.
        event: Rc<Envelope<P>>,
    },
    /// Consent for `dest` was revoked and purging is on: drop its dead letters.
    PurgeDeadLetters {
        /// Destination index.
        dest: usize,
    },
    /// A replay started by [`Manager::replay`] has finished.
    ReplayDone {
        /// The ticket `replay` returned.
        ticket: u32,
        /// Events replayed.
        retried: u32,
        /// Of those, delivered.
        succeeded: u32,
        /// Of those, back in the dead-letter queue (or purged).
        failed: u32,
    },
    /// A warning for the page author.
    Warn {
        /// The message.
        message: String,
    },
}

/// How a delivery ended.
#[derive(Debug)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// Failed.
    Err(DeliveryError),
    /// Not attempted or not judged because the browser is offline: no failure is counted.
    Offline,
}

/// Per-destination counters and state, for `status()`.
#[derive(Clone, Debug, PartialEq)]
pub struct DestStatus {
    /// Destination id.
    pub id: String,
    /// Load state.
    pub state: LoadState,
    /// Circuit breaker state.
    pub circuit: BreakerState,
    /// Events delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Events waiting (buffered, queued or in flight).
    pub pending: usize,
    /// The most recent error.
    pub last_error: Option<DeliveryError>,
}

struct Item<P> {
    env: Rc<Envelope<P>>,
    attempts: u32,
    first_failed_at: u64,
    replay: Option<u32>,
}

struct Dest<P> {
    spec: DestSpec,
    state: LoadState,
    load_attempts: u32,
    load_retry_at: Option<u64>,
    queue: VecDeque<Item<P>>,
    queued_bytes: usize,
    in_flight: usize,
    retry_at: Option<u64>,
    flush_due: Option<u64>,
    flush_requested: bool,
    breaker: CircuitBreaker,
    delivered: u64,
    failed: u64,
    dead_lettered: u64,
    last_error: Option<DeliveryError>,
    overflow_warned: bool,
}

struct Replay {
    ticket: u32,
    remaining: u32,
    retried: u32,
    succeeded: u32,
    failed: u32,
}

/// The destination manager. See the module docs.
pub struct Manager<P> {
    cfg: ManagerConfig,
    dests: Vec<Dest<P>>,
    consent: Consent,
    online: bool,
    rng: Box<dyn Rng>,
    out: Vec<Command<P>>,
    replays: Vec<Replay>,
    next_ticket: u32,
}

impl<P> Manager<P> {
    /// A manager over `specs` (in config order) with the initial consent.
    pub fn new(
        cfg: ManagerConfig,
        specs: Vec<DestSpec>,
        consent: Consent,
        rng: Box<dyn Rng>,
    ) -> Self {
        let breaker = cfg.breaker;
        Manager {
            dests: specs
                .into_iter()
                .map(|spec| Dest {
                    spec,
                    state: LoadState::Registered,
                    load_attempts: 0,
                    load_retry_at: None,
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    in_flight: 0,
                    retry_at: None,
                    flush_due: None,
                    flush_requested: false,
                    breaker: CircuitBreaker::new(breaker),
                    delivered: 0,
                    failed: 0,
                    dead_lettered: 0,
                    last_error: None,
                    overflow_warned: false,
                })
                .collect(),
            cfg,
            consent,
            online: true,
            rng,
            out: Vec::new(),
            replays: Vec::new(),
            next_ticket: 0,
        }
    }

    /// The destination specs, by index.
    pub fn spec(&self, dest: usize) -> &DestSpec {
        &self.dests[dest].spec
    }

    /// The number of destinations.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Whether there are no destinations.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The index of the destination with `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.dests.iter().position(|d| d.spec.id == id)
    }

    /// The consent currently in force.
    pub fn consent(&self) -> Consent {
        self.consent
    }

    /// Whether an event captured under `consent` may go to `dest`.
    pub fn routes(&self, kind: EventKind, consent: Purposes, dest: usize) -> bool {
        let d = &self.dests[dest];
        if kind == EventKind::Consent {
            return matches!(d.state, LoadState::Loading | LoadState::Loaded);
        }
        consent.covers(d.spec.required) && self.consent.allows(d.spec.required)
    }

    /// Starts eager loading (call once after construction). With the lazy strategy it does
    /// nothing.
    pub fn start(&mut self, now: u64) -> Vec<Command<P>> {
        if self.cfg.strategy == Strategy::Eager {
            self.preload();
        }
        self.poll(now)
    }

    /// Loads every destination the current consent allows (`preload()`).
    pub fn preload(&mut self) {
        for i in 0..self.dests.len() {
            if self.consent.allows(self.dests[i].spec.required) {
                self.begin_load(i);
            }
        }
    }

    /// Routes a captured event to every destination whose requirements its consent stamp meets.
    pub fn capture(&mut self, env: Envelope<P>, now: u64) {
        let env = Rc::new(env);
        for i in 0..self.dests.len() {
            if self.routes(env.kind, env.consent, i) {
                self.enqueue(i, env.clone(), None, now);
            }
        }
    }

    /// Restores a persisted, undelivered event for `dest` (the relay's outbox after a reload):
    /// queued without being persisted again.
    pub fn restore(&mut self, dest: usize, env: Envelope<P>, now: u64) {
        let env = Rc::new(env);
        self.push_item(dest, env, None, now, false);
        self.begin_load(dest);
    }

    fn enqueue(&mut self, i: usize, env: Rc<Envelope<P>>, replay: Option<u32>, now: u64) {
        let d = &mut self.dests[i];
        if d.state == LoadState::Failed && replay.is_none() {
            let err = d.last_error.clone().unwrap_or_else(|| {
                DeliveryError::new(ErrorKind::ScriptLoad, "destination failed to load")
            });
            self.dead_letter(i, env, err, 0, now, now);
            return;
        }
        let durable = d.spec.durable;
        self.push_item(i, env, replay, now, durable);
        if env_kind_loads(self.dests[i].queue.back().map(|it| it.env.kind)) {
            self.begin_load(i);
        }
    }

    fn push_item(
        &mut self,
        i: usize,
        env: Rc<Envelope<P>>,
        replay: Option<u32>,
        now: u64,
        persist: bool,
    ) {
        let d = &mut self.dests[i];
        if d.queue.len() >= self.cfg.buffer_limit {
            if !d.overflow_warned {
                d.overflow_warned = true;
                let mut message = String::from("destination ");
                message.push_str(&d.spec.id);
                message.push_str(" holds loading.bufferLimit (");
                message.push_str(&self.cfg.buffer_limit.to_string());
                message
                    .push_str(") undelivered events; further events go to the dead-letter queue");
                self.out.push(Command::Warn { message });
            }
            let err = DeliveryError::new(ErrorKind::Unknown, "buffer full (loading.bufferLimit)");
            self.dead_letter(i, env, err, 0, now, now);
            if let Some(t) = replay {
                self.replay_result(t, false);
            }
            return;
        }
        if persist {
            self.out.push(Command::Persist {
                dest: i,
                event: env.clone(),
            });
        }
        let d = &mut self.dests[i];
        if let Some(b) = d.spec.batch {
            if d.queue.len() == d.in_flight {
                d.flush_due = Some(now + b.interval_ms);
            }
        }
        d.queued_bytes += env.json.len();
        d.queue.push_back(Item {
            env,
            attempts: 0,
            first_failed_at: 0,
            replay,
        });
    }

    fn begin_load(&mut self, i: usize) {
        let d = &mut self.dests[i];
        if matches!(d.state, LoadState::Registered | LoadState::Unloaded) {
            d.state = LoadState::Loading;
            d.load_attempts = 0;
            d.load_retry_at = None;
            self.out.push(Command::Load { dest: i });
        }
    }

    /// Reports the end of a load started by [`Command::Load`].
    pub fn load_done(
        &mut self,
        dest: usize,
        result: Result<(), DeliveryError>,
        now: u64,
    ) -> Vec<Command<P>> {
        let d = &mut self.dests[dest];
        if d.state != LoadState::Loading {
            // Unloaded while loading: the result no longer matters.
            return self.poll(now);
        }
        match result {
            Ok(()) => {
                d.state = LoadState::Loaded;
                d.load_attempts = 0;
                self.out.push(Command::Loaded { dest });
            }
            Err(error) => {
                d.load_attempts += 1;
                d.failed += 1;
                d.last_error = Some(error.clone());
                self.out.push(Command::Failed {
                    dest,
                    error: error.clone(),
                });
                let d = &mut self.dests[dest];
                if d.load_attempts <= self.cfg.load_max_retries {
                    let delay = self
                        .cfg
                        .retry
                        .delay_ms(d.load_attempts, None, &mut *self.rng);
                    d.load_retry_at = Some(now + delay);
                } else {
                    d.state = LoadState::Failed;
                    d.load_retry_at = None;
                    let items: Vec<Item<P>> = d.queue.drain(..).collect();
                    d.queued_bytes = 0;
                    d.flush_due = None;
                    for it in items {
                        let first = if it.attempts > 0 {
                            it.first_failed_at
                        } else {
                            now
                        };
                        self.dead_letter(dest, it.env, error.clone(), it.attempts, first, now);
                        if let Some(t) = it.replay {
                            self.replay_result(t, false);
                        }
                    }
                }
            }
        }
        self.poll(now)
    }

    /// Reports the end of a delivery started by [`Command::Deliver`].
    pub fn delivery_done(&mut self, dest: usize, outcome: Outcome, now: u64) -> Vec<Command<P>> {
        let n = std::mem::take(&mut self.dests[dest].in_flight);
        if n == 0 {
            return self.poll(now);
        }
        match outcome {
            Outcome::Ok => {
                let d = &mut self.dests[dest];
                d.breaker.on_success(now);
                d.retry_at = None;
                let done: Vec<Item<P>> = d.queue.drain(..n.min(d.queue.len())).collect();
                d.delivered += done.len() as u64;
                let durable = d.spec.durable;
                let mut events = Vec::with_capacity(done.len());
                for it in done {
                    self.dests[dest].queued_bytes -= it.env.json.len();
                    if durable {
                        self.out.push(Command::Forget {
                            dest,
                            event: it.env.clone(),
                        });
                    }
                    if let Some(t) = it.replay {
                        self.replay_result(t, true);
                    }
                    events.push(it.env);
                }
                self.out.push(Command::Delivered { dest, events });
            }
            Outcome::Offline => {
                self.dests[dest].breaker.release();
            }
            Outcome::Err(error) => {
                let d = &mut self.dests[dest];
                d.breaker.on_failure(now);
                d.failed += 1;
                d.last_error = Some(error.clone());
                d.flush_requested = false;
                self.out.push(Command::Failed {
                    dest,
                    error: error.clone(),
                });
                // Every item of the failed delivery counts an attempt; the exhausted ones (and
                // replays, which get one attempt) are dead-lettered, the rest wait for a retry.
                let mut keep = VecDeque::new();
                let d = &mut self.dests[dest];
                let batch: Vec<Item<P>> = d.queue.drain(..n.min(d.queue.len())).collect();
                let mut dead = Vec::new();
                for mut it in batch {
                    if it.attempts == 0 {
                        it.first_failed_at = now;
                    }
                    it.attempts += 1;
                    if it.replay.is_none() && self.cfg.retry.should_retry(&error, it.attempts) {
                        keep.push_back(it);
                    } else {
                        dead.push(it);
                    }
                }
                let d = &mut self.dests[dest];
                if let Some(head) = keep.front() {
                    let delay = self.cfg.retry.delay_ms(
                        head.attempts,
                        error.retry_after_ms,
                        &mut *self.rng,
                    );
                    d.retry_at = Some(now + delay);
                }
                while let Some(it) = keep.pop_back() {
                    d.queue.push_front(it);
                }
                for it in dead {
                    self.dests[dest].queued_bytes -= it.env.json.len();
                    let replay = it.replay;
                    self.dead_letter(
                        dest,
                        it.env,
                        error.clone(),
                        it.attempts,
                        it.first_failed_at,
                        now,
                    );
                    if let Some(t) = replay {
                        self.replay_result(t, false);
                    }
                }
            }
        }
        self.poll(now)
    }

    fn dead_letter(
        &mut self,
        dest: usize,
        env: Rc<Envelope<P>>,
        error: DeliveryError,
        attempts: u32,
        first: u64,
        now: u64,
    ) {
        let d = &mut self.dests[dest];
        d.dead_lettered += 1;
        if d.spec.durable {
            self.out.push(Command::Forget {
                dest,
                event: env.clone(),
            });
        }
        self.out.push(Command::DeadLetter {
            dest,
            event: env,
            error,
            attempts,
            first_failed_at: first,
            last_failed_at: now,
        });
    }

    /// Changes the consent in force: destinations that lost a required purpose stop receiving
    /// events, have their scripts removed and (with purging) their undelivered events and dead
    /// letters dropped; with eager loading, newly allowed ones load. The caller captures the
    /// `consent` event afterwards.
    pub fn set_consent(&mut self, consent: Consent, now: u64) {
        let old = self.consent;
        self.consent = consent;
        for i in 0..self.dests.len() {
            let req = self.dests[i].spec.required;
            let (was, is) = (old.allows(req), consent.allows(req));
            if was && !is {
                if self.cfg.purge_on_revoke {
                    self.purge(i);
                    self.out.push(Command::PurgeDeadLetters { dest: i });
                }
                if matches!(self.dests[i].state, LoadState::Loading | LoadState::Loaded) {
                    self.out.push(Command::RemoveScripts { dest: i });
                }
            } else if !was && is && self.cfg.strategy == Strategy::Eager {
                self.begin_load(i);
            }
        }
        let _ = now;
    }

    /// Drops every undelivered, not-in-flight event of `dest` except consent events.
    fn purge(&mut self, i: usize) {
        let d = &mut self.dests[i];
        let n = d.in_flight;
        let durable = d.spec.durable;
        let rest: Vec<Item<P>> = d.queue.drain(n..).collect();
        let mut dropped = Vec::new();
        for it in rest {
            if it.env.kind == EventKind::Consent {
                self.dests[i].queue.push_back(it);
            } else {
                self.dests[i].queued_bytes -= it.env.json.len();
                dropped.push(it);
            }
        }
        if self.dests[i].queue.len() == n {
            self.dests[i].retry_at = None;
        }
        for it in dropped {
            if durable {
                self.out.push(Command::Forget {
                    dest: i,
                    event: it.env.clone(),
                });
            }
            if let Some(t) = it.replay {
                self.replay_result(t, false);
            }
        }
    }

    /// Re-queues dead letters for `dest` (one attempt each); returns a ticket reported by
    /// [`Command::ReplayDone`]. Forces a trial through an open circuit breaker: a replay is a
    /// person's explicit request.
    pub fn replay(&mut self, dest: usize, events: Vec<Envelope<P>>, now: u64) -> u32 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let n = events.len() as u32;
        self.replays.push(Replay {
            ticket,
            remaining: n,
            retried: n,
            succeeded: 0,
            failed: 0,
        });
        if self.dests[dest].breaker.state(now) != BreakerState::Closed {
            self.dests[dest].breaker.force_half_open();
        }
        self.dests[dest].retry_at = None;
        if self.dests[dest].state == LoadState::Failed {
            self.retry_destination(dest);
        }
        for env in events {
            let env = Rc::new(env);
            let durable = self.dests[dest].spec.durable;
            self.push_item(dest, env, Some(ticket), now, durable);
            self.begin_load(dest);
        }
        if n == 0 {
            self.replay_result(ticket, true);
        }
        ticket
    }

    fn replay_result(&mut self, ticket: u32, ok: bool) {
        if let Some(pos) = self.replays.iter().position(|r| r.ticket == ticket) {
            let r = &mut self.replays[pos];
            if r.remaining > 0 {
                r.remaining -= 1;
                if ok {
                    r.succeeded += 1;
                } else {
                    r.failed += 1;
                }
            }
            if r.remaining == 0 {
                let r = self.replays.remove(pos);
                self.out.push(Command::ReplayDone {
                    ticket: r.ticket,
                    retried: r.retried,
                    succeeded: r.succeeded,
                    failed: r.failed,
                });
            }
        }
    }

    /// Tries a failed destination's load again (`retryDestination`).
    pub fn retry_destination(&mut self, dest: usize) {
        let d = &mut self.dests[dest];
        if d.state == LoadState::Failed {
            d.state = LoadState::Registered;
        }
        if self.consent.allows(d.spec.required) || !d.queue.is_empty() {
            self.begin_load(dest);
        }
    }

    /// Unloads a destination (`unloadDestination`): destroys its instance; undelivered events
    /// stay queued and a later event loads it again.
    pub fn unload_destination(&mut self, dest: usize) {
        let d = &mut self.dests[dest];
        if matches!(d.state, LoadState::Loading | LoadState::Loaded) {
            self.out.push(Command::Destroy { dest });
        }
        let d = &mut self.dests[dest];
        d.state = LoadState::Unloaded;
        d.load_retry_at = None;
    }

    /// Requests that batching destinations send what they hold now (`flush()`).
    pub fn request_flush(&mut self) {
        for d in &mut self.dests {
            if d.spec.batch.is_some() && d.queue.len() > d.in_flight {
                d.flush_requested = true;
            }
        }
    }

    /// Whether a requested flush is still under way (the `flush()` promise waits for `false`).
    pub fn flushing(&self) -> bool {
        self.dests
            .iter()
            .any(|d| d.spec.batch.is_some() && (d.flush_requested || d.in_flight > 0))
    }

    /// Tells the manager whether the browser is online; offline, nothing is attempted.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Takes the events a batching destination holds but has not sent, for an unload-time
    /// beacon; they count as delivered once the browser accepted the beacon.
    pub fn take_unsent(&mut self, dest: usize) -> Vec<Rc<Envelope<P>>> {
        let d = &mut self.dests[dest];
        if d.state != LoadState::Loaded {
            return Vec::new();
        }
        let n = d.in_flight;
        let rest: Vec<Item<P>> = d.queue.drain(n..).collect();
        d.flush_due = None;
        d.flush_requested = false;
        rest.into_iter()
            .map(|it| {
                d.queued_bytes -= it.env.json.len();
                it.env
            })
            .collect()
    }

    /// Records events handed to the browser by a beacon as delivered.
    pub fn beacon_sent(&mut self, dest: usize, events: Vec<Rc<Envelope<P>>>) {
        let d = &mut self.dests[dest];
        d.delivered += events.len() as u64;
        if d.spec.durable {
            for e in &events {
                self.out.push(Command::Forget {
                    dest,
                    event: e.clone(),
                });
            }
        }
        self.out.push(Command::Delivered { dest, events });
    }

    /// Puts events back at the front of a batching destination's queue (a beacon the browser
    /// refused), in their original order.
    pub fn untake(&mut self, dest: usize, events: Vec<Rc<Envelope<P>>>, now: u64) {
        let d = &mut self.dests[dest];
        for env in events.into_iter().rev() {
            d.queued_bytes += env.json.len();
            let at = d.in_flight;
            d.queue.insert(
                at,
                Item {
                    env,
                    attempts: 0,
                    first_failed_at: 0,
                    replay: None,
                },
            );
        }
        if let Some(b) = d.spec.batch {
            d.flush_due.get_or_insert(now + b.interval_ms);
        }
    }

    /// The earliest time at which [`Manager::poll`] has something to do, for a timer.
    pub fn next_wake(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut consider = |x: Option<u64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for d in &self.dests {
            consider(d.load_retry_at);
            if d.state == LoadState::Loaded && d.in_flight == 0 && !d.queue.is_empty() {
                consider(d.retry_at);
                consider(d.breaker.next_attempt_at());
                if !d.flush_requested {
                    consider(d.flush_due);
                }
            }
        }
        t
    }

    /// Advances every destination as far as it can go at `now` and returns the commands to run.
    pub fn poll(&mut self, now: u64) -> Vec<Command<P>> {
        for i in 0..self.dests.len() {
            self.poll_dest(i, now);
        }
        std::mem::take(&mut self.out)
    }

    fn poll_dest(&mut self, i: usize, now: u64) {
        let d = &mut self.dests[i];
        if d.state == LoadState::Loading {
            if let Some(at) = d.load_retry_at {
                if at <= now {
                    d.load_retry_at = None;
                    self.out.push(Command::Load { dest: i });
                }
            }
            return;
        }
        if d.state != LoadState::Loaded || d.in_flight > 0 || d.queue.is_empty() || !self.online {
            return;
        }
        if d.retry_at.is_some_and(|at| at > now) {
            return;
        }
        let take = match d.spec.batch {
            None => 1,
            Some(b) => {
                let due = d.flush_requested
                    || d.queue.len() >= b.max_events
                    || d.queued_bytes >= b.max_bytes
                    || d.flush_due.is_some_and(|at| at <= now)
                    || d.queue
                        .front()
                        .is_some_and(|it| it.attempts > 0 || it.replay.is_some());
                if !due {
                    return;
                }
                let mut n = 0;
                let mut bytes = 0;
                for it in d.queue.iter().take(b.max_events) {
                    // An event larger than max_bytes still goes, alone.
                    if n > 0 && bytes + it.env.json.len() > b.max_bytes {
                        break;
                    }
                    bytes += it.env.json.len();
                    n += 1;
                }
                n
            }
        };
        if !d.breaker.try_acquire(now) {
            return;
        }
        d.retry_at = None;
        d.in_flight = take;
        if d.spec.batch.is_some() {
            let remaining = d.queue.len() - take;
            if remaining == 0 {
                d.flush_requested = false;
                d.flush_due = None;
            } else if let Some(b) = d.spec.batch {
                d.flush_due = Some(now + b.interval_ms);
            }
        }
        let events = d.queue.iter().take(take).map(|it| it.env.clone()).collect();
        self.out.push(Command::Deliver { dest: i, events });
    }

    /// The status of every destination, in config order.
    pub fn status(&self, now: u64) -> Vec<DestStatus> {
        self.dests
            .iter()
            .map(|d| DestStatus {
                id: d.spec.id.clone(),
                state: if !self.consent.allows(d.spec.required)
                    && matches!(d.state, LoadState::Registered | LoadState::Loaded)
                {
                    LoadState::Blocked
                } else {
                    d.state
                },
                circuit: d.breaker.state(now),
                delivered: d.delivered,
                failed: d.failed,
                dead_lettered: d.dead_lettered,
                pending: d.queue.len(),
                last_error: d.last_error.clone(),
            })
            .collect()
    }
}

fn env_kind_loads(kind: Option<EventKind>) -> bool {
    matches!(kind, Some(k) if k != EventKind::Consent)
}
