//! The destination manager: a sans-IO state machine that decides, for every destination, what
//! happens next — load it, deliver the next event or batch, wait for a retry or for the circuit
//! breaker, dead-letter, purge on revocation. The browser driver feeds it inputs (events,
//! consent changes, results, the time) and carries out the [`Command`]s it returns; tests do the
//! same with a fake clock, so every decision is tested natively and deterministically.
//!
//! Each destination has its own ordered queue and at most one delivery in flight, so one slow,
//! failing or hanging destination never delays or reorders another.

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
    /// Most events a destination without a durable store holds undelivered; overflow is
    /// dead-lettered. A durable destination's queue is bounded by its store (the storage
    /// quota), not by this: a backlog left by an offline or closed tab is delivered in full.
    pub buffer_limit: usize,
    /// Load retries after the first failed load.
    pub load_max_retries: u32,
    /// Delivery retry policy (also the backoff for load retries).
    pub retry: RetryPolicy,
    /// Circuit breaker settings, one breaker per destination.
    pub breaker: BreakerConfig,
    /// Whether revoking consent drops a destination's undelivered events and dead letters.
    pub purge_on_revoke: bool,
    /// How long a durable destination keeps retrying an event that fails retryably, counted
    /// from its first failure (`deadLetter.ttlMs`): until then an outage loses nothing, past
    /// it the event is dead-lettered.
    pub durable_ttl_ms: u64,
}

/// How recently a destination's last delivery on this page must have been acknowledged (2xx),
/// with none failed since, for page hide to trust a beacon: its events are then forgotten at
/// once. Without such an answer (none yet on this page, or older than this), page hide hands
/// the events over and keeps them (in the queue and the relay's outbox), so a later delivery
/// (this page's, or the next page's from the outbox) sends them again with the same messageId:
/// at least once, and a backend that dedupes on messageId sees each event once. After a failed
/// delivery nothing is handed over. 30 s: long enough to cover a page in active use, short
/// enough that an outage that began since is unlikely to go unnoticed.
pub const BEACON_TRUST_MS: u64 = 30_000;

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            strategy: Strategy::Lazy,
            buffer_limit: 1000,
            load_max_retries: 3,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            purge_on_revoke: true,
            durable_ttl_ms: 86_400_000,
        }
    }
}

/// Batching limits of a destination that takes events in batches (the relay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Send when this many events are pending.
    pub max_events: usize,
    /// Send when the pending events' JSON reaches this many bytes; a batch holds at most this
    /// many bytes of events, each counted with one byte for its separator (an event larger
    /// than that still goes, alone). The relay sets it to `maxBatchBytes` less its body's
    /// wrapper.
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
    /// persist and forget them through [`Command::Store`].
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
        /// This attempt, for [`Manager::load_ended`]: the result of an older one (abandoned on
        /// revocation or unload, or superseded) is ignored.
        attempt: u32,
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
        /// For a failed replay, the id of the dead letter it came from: put back under it (a
        /// new entry otherwise).
        id: Option<String>,
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
    /// For a durable destination: persist an accepted event before it is sent (`keep`), or
    /// drop a persisted one (acknowledged, dead-lettered or purged).
    Store {
        /// Destination index.
        dest: usize,
        /// The event.
        event: Rc<Envelope<P>>,
        /// Persist (`true`) or drop (`false`).
        keep: bool,
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
    /// Events sent to the dead-letter queue (a failed replay puts one back without counting).
    pub dead_lettered: u64,
    /// Events the destination itself chose not to take (a JavaScript destination's
    /// `onBeforeEvent` returned null): done with, not delivered.
    pub skipped: u64,
    /// Events waiting (buffered, queued or in flight).
    pub pending: usize,
    /// The most recent error.
    pub last_error: Option<DeliveryError>,
}

/// A dead letter's history, handed to [`Manager::replay`] with its event: a replay that fails
/// puts back the same entry, its attempts added up and its first failure kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Earlier {
    /// The dead letter's id.
    pub id: String,
    /// Attempts made before the replay.
    pub attempts: u32,
    /// When its first attempt failed.
    pub first_failed_at: u64,
}

/// A replayed item: the ticket of its replay and its dead letter's history.
struct Replaying {
    ticket: u32,
    earlier: Earlier,
}

struct Item<P> {
    env: Rc<Envelope<P>>,
    attempts: u32,
    first_failed_at: u64,
    replay: Option<Box<Replaying>>,
    /// Handed to a beacon at page hide and kept (see [`BEACON_TRUST_MS`]): not handed again.
    handed: bool,
}

/// The end of the run of consent changes in `queue` that starts at `from`.
fn changes_from<P>(queue: &[Item<P>], mut from: usize) -> usize {
    while queue
        .get(from)
        .is_some_and(|it| it.env.kind == EventKind::Consent)
    {
        from += 1;
    }
    from
}

struct Dest<P> {
    spec: DestSpec,
    state: LoadState,
    load_attempts: u32,
    /// How many load attempts were started (the `attempt` of the last `Command::Load`).
    load_started: u32,
    load_retry_at: Option<u64>,
    queue: Vec<Item<P>>,
    queued_bytes: usize,
    in_flight: usize,
    retry_at: Option<u64>,
    flush_due: Option<u64>,
    flush_requested: bool,
    breaker: CircuitBreaker,
    delivered: u64,
    failed: u64,
    dead_lettered: u64,
    skipped: u64,
    /// The messageIds of the delivery in flight that the destination skipped.
    skipping: Vec<Rc<str>>,
    last_error: Option<DeliveryError>,
    /// When this page's last delivery was acknowledged, if none failed since.
    ok_at: Option<u64>,
    /// Whether this page's last delivery failed.
    failing: bool,
    overflow_warned: bool,
    /// Events with a seq up to this were captured before a revocation: never sent.
    purge_upto: u64,
}

/// What [`Manager::take_unsent`] took for a beacon at page hide.
pub struct Unsent<P> {
    /// The events, oldest first.
    pub events: Vec<Rc<Envelope<P>>>,
    /// Whether they stay queued and persisted (the backend is not known to be healthy) rather
    /// than being forgotten once handed over.
    pub kept: bool,
}

impl<P> Dest<P> {
    /// Whether `it` was captured before a revocation that purged this destination's events:
    /// never to be sent to it (consent changes always go).
    fn purged(&self, it: &Item<P>) -> bool {
        it.env.kind != EventKind::Consent && it.env.seq <= self.purge_upto
    }

    /// Whether events other than consent changes wait in its queue.
    fn waiting(&self) -> bool {
        for it in &self.queue {
            if it.env.kind != EventKind::Consent {
                return true;
            }
        }
        false
    }
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
    last_seq: u64,
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
        // A plain loop: no in-place `collect` code in the wasm.
        let mut dests = Vec::with_capacity(specs.len());
        for spec in specs {
            dests.push(Dest {
                spec,
                state: LoadState::Registered,
                load_attempts: 0,
                load_started: 0,
                load_retry_at: None,
                queue: Vec::new(),
                queued_bytes: 0,
                in_flight: 0,
                retry_at: None,
                flush_due: None,
                flush_requested: false,
                breaker: CircuitBreaker::new(breaker),
                delivered: 0,
                failed: 0,
                dead_lettered: 0,
                skipped: 0,
                skipping: Vec::new(),
                last_error: None,
                ok_at: None,
                failing: false,
                overflow_warned: false,
                purge_upto: 0,
            });
        }
        Manager {
            dests,
            cfg,
            consent,
            online: true,
            rng,
            out: Vec::new(),
            replays: Vec::new(),
            next_ticket: 0,
            last_seq: 0,
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

    /// Whether the consent in force allows `dest` (it may load and receive events).
    pub fn allowed(&self, dest: usize) -> bool {
        self.consent.allows(self.dests[dest].spec.required)
    }

    /// Whether `dest` is loaded and allowed by the consent in force (`status()` says loaded).
    pub fn loaded(&self, dest: usize) -> bool {
        self.dests[dest].state == LoadState::Loaded && self.allowed(dest)
    }

    /// Whether revoking consent drops a destination's undelivered events (`purgeOnRevoke`).
    pub fn purges(&self) -> bool {
        self.cfg.purge_on_revoke
    }

    /// Whether an event captured under `consent` may go to `dest`.
    pub fn routes(&self, kind: EventKind, consent: Purposes, dest: usize) -> bool {
        let d = &self.dests[dest];
        if kind == EventKind::Consent {
            return match d.state {
                LoadState::Loading | LoadState::Loaded => true,
                // Not loaded yet (lazy loading) but allowed by the change: it hears the
                // change first when its first event loads it, as a loaded one hears it now.
                LoadState::Registered | LoadState::Unloaded => consent.covers(d.spec.required),
                LoadState::Failed | LoadState::Blocked => false,
            };
        }
        // An event captured before a revocation that is routed after it (a source middleware
        // held it): dropped as the purge would drop it, or kept with the purge off.
        consent.covers(d.spec.required) && (self.allowed(dest) || !self.cfg.purge_on_revoke)
    }

    /// Starts eager loading (call once after construction). With the lazy strategy it does
    /// nothing.
    pub fn start(&mut self, now: u64) -> Vec<Command<P>> {
        if self.cfg.strategy == Strategy::Eager {
            self.preload();
        }
        // A durable destination (the relay) injects nothing: it loads at once, so its outbox
        // is delivered and a first burst of events does not wait in the load buffer.
        for i in 0..self.dests.len() {
            if self.dests[i].spec.durable {
                self.begin_load(i);
            }
        }
        self.poll(now)
    }

    /// Whether a durable destination is still loading (`Analytics.load` waits for it).
    pub fn durable_loading(&self) -> bool {
        self.dests
            .iter()
            .any(|d| d.spec.durable && d.state == LoadState::Loading)
    }

    /// Loads every destination the current consent allows (`preload()`).
    pub fn preload(&mut self) {
        for i in 0..self.dests.len() {
            self.begin_load(i);
        }
    }

    /// Whether `dest` is loading (or waiting to retry its load).
    pub fn loading(&self, dest: usize) -> bool {
        self.dests[dest].state == LoadState::Loading
    }

    /// Whether any destination is loading (or waiting to retry its load).
    pub fn any_loading(&self) -> bool {
        self.dests.iter().any(|d| d.state == LoadState::Loading)
    }

    /// Routes a captured event to every destination whose requirements its consent stamp meets.
    pub fn capture(&mut self, env: Envelope<P>, now: u64) {
        let env = self.sequenced(env);
        for i in 0..self.dests.len() {
            if self.routes(env.kind, env.consent, i) {
                self.enqueue(i, env.clone(), now);
            }
        }
    }

    /// Restores a persisted, undelivered event for `dest` (the relay's outbox after a reload):
    /// queued without being persisted again.
    pub fn restore(&mut self, dest: usize, env: Envelope<P>, now: u64) {
        let env = self.sequenced(env);
        self.push_item(dest, env, None, now, false);
        // An earlier page's backlog goes first and at once, not after a flush interval.
        self.dests[dest].flush_due = Some(now);
        self.begin_load(dest);
    }

    /// Gives an event the next capture sequence number (its `seq` is set by the manager), shared.
    fn sequenced(&mut self, mut env: Envelope<P>) -> Rc<Envelope<P>> {
        self.last_seq += 1;
        env.seq = self.last_seq;
        Rc::new(env)
    }

    fn enqueue(&mut self, i: usize, env: Rc<Envelope<P>>, now: u64) {
        let d = &mut self.dests[i];
        if d.state == LoadState::Failed {
            let err = match &d.last_error {
                Some(e) => e.clone(),
                None => DeliveryError::new(ErrorKind::ScriptLoad, "destination failed to load"),
            };
            self.dead_letter(i, env, &err, 0, now, now, None);
            return;
        }
        let durable = d.spec.durable;
        // A destination that is not loaded needs only the latest of the consent changes that
        // wait at the end of its queue: the newer one replaces the older.
        if env.kind == EventKind::Consent
            && !durable
            && matches!(d.state, LoadState::Registered | LoadState::Unloaded)
            && d.queue.len() > d.in_flight
            && d.queue
                .last()
                .is_some_and(|it| it.env.kind == EventKind::Consent)
        {
            if let Some(old) = d.queue.pop() {
                d.queued_bytes -= old.env.json.len();
            }
        }
        self.push_item(i, env, None, now, durable);
        if env_kind_loads(self.dests[i].queue.last().map(|it| it.env.kind)) {
            self.begin_load(i);
        }
    }

    fn push_item(
        &mut self,
        i: usize,
        env: Rc<Envelope<P>>,
        replay: Option<Box<Replaying>>,
        now: u64,
        persist: bool,
    ) {
        let allowed = self.allowed(i);
        let d = &mut self.dests[i];
        // `loading.bufferLimit` bounds what waits for a load; a loaded destination drains its
        // queue as fast as it delivers, so a burst may hold more (a safety cap still applies).
        // A durable destination's events are in its store already: only the quota bounds it.
        let limit = if d.spec.durable {
            usize::MAX
        } else if d.state == LoadState::Loaded {
            self.cfg.buffer_limit.saturating_mul(10).max(10_000)
        } else {
            self.cfg.buffer_limit
        };
        if d.queue.len() >= limit {
            if !d.overflow_warned {
                d.overflow_warned = true;
                let mut message = String::from("destination ");
                message.push_str(&d.spec.id);
                message.push_str(" holds ");
                message.push_str(&limit.to_string());
                message.push_str(
                    " undelivered events (loading.bufferLimit); further events go to the dead-letter queue",
                );
                self.out.push(Command::Warn { message });
            }
            let err = DeliveryError::new(ErrorKind::Unknown, "buffer full (loading.bufferLimit)");
            self.dead_letter(i, env, &err, 0, now, now, replay);
            return;
        }
        if persist {
            self.out.push(Command::Store {
                dest: i,
                event: env.clone(),
                keep: true,
            });
        }
        let d = &mut self.dests[i];
        if let Some(b) = d.spec.batch {
            if d.queue.len() == d.in_flight {
                d.flush_due = Some(now + b.interval_ms);
            }
        }
        d.queued_bytes += env.json.len();
        // While its consent is missing, a consent change goes ahead of the events kept for it
        // (behind those in flight and the changes already waiting): the destination hears of
        // a revocation at its next delivery, not only once consent returns.
        let mut at = d.queue.len();
        if !allowed && env.kind == EventKind::Consent {
            at = changes_from(&d.queue, d.in_flight);
        }
        d.queue.insert(
            at,
            Item {
                env,
                attempts: 0,
                first_failed_at: 0,
                replay,
                handed: false,
            },
        );
    }

    /// Starts loading destination `i` unless it is loading or loaded, or the consent in force
    /// does not allow it: the one gate every load passes, so nothing is injected for a
    /// destination whose consent is missing, whatever asked for the load.
    fn begin_load(&mut self, i: usize) {
        let allowed = self.allowed(i);
        let d = &mut self.dests[i];
        if allowed && matches!(d.state, LoadState::Registered | LoadState::Unloaded) {
            d.state = LoadState::Loading;
            d.load_attempts = 0;
            d.load_retry_at = None;
            self.load_command(i);
        }
    }

    /// Issues a new load attempt of destination `i`.
    fn load_command(&mut self, i: usize) {
        let d = &mut self.dests[i];
        d.load_started = d.load_started.wrapping_add(1);
        let attempt = d.load_started;
        self.out.push(Command::Load { dest: i, attempt });
    }

    /// Whether load attempt `attempt` of `dest` is still wanted (the current one, and the
    /// destination still loading): one that is not is not started at all.
    pub fn load_wanted(&self, dest: usize, attempt: u32) -> bool {
        let d = &self.dests[dest];
        d.state == LoadState::Loading && attempt == d.load_started
    }

    /// Reports the end of load attempt `attempt` (from [`Command::Load`]) of `dest`. The result
    /// of an attempt that is no longer the current one is ignored: consent was revoked or the
    /// destination unloaded while it ran, and a newer attempt may be under way.
    pub fn load_ended(
        &mut self,
        dest: usize,
        attempt: u32,
        result: Result<(), DeliveryError>,
        now: u64,
    ) -> Vec<Command<P>> {
        if !self.load_wanted(dest, attempt) {
            return self.poll(now);
        }
        self.load_done(dest, result, now)
    }

    /// Reports the end of the current load attempt of `dest` (see [`Manager::load_ended`]).
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
                self.record_failure(dest, &error);
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
                    let items = std::mem::take(&mut d.queue);
                    d.queued_bytes = 0;
                    d.flush_due = None;
                    for it in items {
                        let first = if it.attempts > 0 {
                            it.first_failed_at
                        } else {
                            now
                        };
                        let (env, attempts, replay) = (it.env, it.attempts, it.replay);
                        self.dead_letter(dest, env, &error, attempts, first, now, replay);
                    }
                }
            }
        }
        self.poll(now)
    }

    /// Events a page-hide hand-over that was not sure (a keepalive fetch) carried, which the
    /// backend acknowledged (2xx) while the page still runs: they leave the queue, delivered,
    /// so the next delivery does not send them again.
    pub fn acknowledged(&mut self, dest: usize, ids: &[Rc<str>]) {
        let d = &mut self.dests[dest];
        let rest = d.queue.split_off(d.in_flight);
        let mut done = Vec::new();
        for it in rest {
            if it.handed && ids.contains(&it.env.message_id) {
                done.push(it);
            } else {
                self.dests[dest].queue.push(it);
            }
        }
        if !done.is_empty() {
            let d = &mut self.dests[dest];
            if d.queue.len() == d.in_flight {
                // Nothing left to send: a requested flush is over.
                d.flush_requested = false;
                d.flush_due = None;
            }
            d.delivered += done.len() as u64;
            let mut events = Vec::with_capacity(done.len());
            for it in done {
                events.push(self.finish(dest, it, true));
            }
            self.out.push(Command::Delivered { dest, events });
        }
    }

    /// Reports that a delivery of [`Command::Deliver`] was not started: the destination's
    /// consent was revoked after it was asked for (by a listener of the delivery before it,
    /// say). Its events go back to the front of the queue, but those the revocation purged.
    pub fn delivery_withheld(&mut self, dest: usize, now: u64) -> Vec<Command<P>> {
        let n = std::mem::take(&mut self.dests[dest].in_flight);
        self.dests[dest].breaker.release();
        let batch = take_front(&mut self.dests[dest].queue, n);
        let mut keep = Vec::new();
        for it in batch {
            if self.dests[dest].purged(&it) {
                self.finish(dest, it, false);
            } else {
                keep.push(it);
            }
        }
        let d = &mut self.dests[dest];
        keep.append(&mut d.queue);
        d.queue = keep;
        self.poll(now)
    }

    /// Tells which events of the delivery in flight to `dest` the destination skipped (its
    /// `onBeforeEvent` returned null), before [`Manager::delivery_done`] reports the delivery:
    /// if it succeeds, those are counted as skipped, not delivered.
    pub fn skipped(&mut self, dest: usize, ids: Vec<Rc<str>>) {
        self.dests[dest].skipping = ids;
    }

    /// Reports the end of a delivery started by [`Command::Deliver`].
    pub fn delivery_done(&mut self, dest: usize, outcome: Outcome, now: u64) -> Vec<Command<P>> {
        let skipping = std::mem::take(&mut self.dests[dest].skipping);
        let n = std::mem::take(&mut self.dests[dest].in_flight);
        if n == 0 {
            return self.poll(now);
        }
        match outcome {
            Outcome::Ok => {
                let d = &mut self.dests[dest];
                d.breaker.on_success(now);
                d.retry_at = None;
                d.ok_at = Some(now);
                d.failing = false;
                let done = take_front(&mut d.queue, n);
                let mut events = Vec::with_capacity(done.len());
                for it in done {
                    let skip = skipping.contains(&it.env.message_id);
                    let env = self.finish(dest, it, true);
                    let d = &mut self.dests[dest];
                    if skip {
                        d.skipped += 1;
                    } else {
                        d.delivered += 1;
                        events.push(env);
                    }
                }
                if !events.is_empty() {
                    self.out.push(Command::Delivered { dest, events });
                }
            }
            Outcome::Offline => {
                self.dests[dest].breaker.release();
            }
            Outcome::Err(error) => {
                let d = &mut self.dests[dest];
                d.breaker.on_failure(now);
                d.flush_requested = false;
                d.ok_at = None;
                d.failing = true;
                self.record_failure(dest, &error);
                // Every item of the failed delivery counts an attempt; the exhausted ones (and
                // replays, which get one attempt) are dead-lettered, the rest wait for a retry.
                let mut keep = Vec::new();
                let d = &mut self.dests[dest];
                let batch = take_front(&mut d.queue, n);
                for mut it in batch {
                    if self.dests[dest].purged(&it) {
                        // Consent was revoked while this was in flight: never send it again.
                        self.finish(dest, it, false);
                        continue;
                    }
                    if it.attempts == 0 {
                        it.first_failed_at = now;
                    }
                    it.attempts += 1;
                    if it.replay.is_none() && self.retries(dest, &error, &it, now) {
                        keep.push(it);
                    } else {
                        self.dests[dest].queued_bytes -= it.env.json.len();
                        self.dead_letter(
                            dest,
                            it.env,
                            &error,
                            it.attempts,
                            it.first_failed_at,
                            now,
                            it.replay,
                        );
                    }
                }
                let d = &mut self.dests[dest];
                if let Some(head) = keep.first() {
                    let delay = self.cfg.retry.delay_ms(
                        head.attempts,
                        error.retry_after_ms,
                        &mut *self.rng,
                    );
                    d.retry_at = Some(now + delay);
                }
                keep.append(&mut d.queue);
                d.queue = keep;
            }
        }
        self.poll(now)
    }

    /// Whether an item whose delivery failed with `error` (its `attempts` counted) is tried
    /// again: while the retry policy allows it, and for a durable destination (the relay's
    /// outbox) for as long as the failure is retryable and the item is younger than
    /// `durable_ttl_ms` since its first failure, so an outage with the defaults loses nothing.
    fn retries(&self, dest: usize, error: &DeliveryError, it: &Item<P>, now: u64) -> bool {
        self.cfg.retry.should_retry(error, it.attempts)
            || (self.dests[dest].spec.durable
                && matches!(
                    error.kind,
                    ErrorKind::Server
                        | ErrorKind::RateLimit
                        | ErrorKind::Network
                        | ErrorKind::Timeout
                )
                && now.saturating_sub(it.first_failed_at) < self.cfg.durable_ttl_ms)
    }

    /// An item leaves the queue without being dead-lettered (delivered, or dropped after a
    /// revocation): its bytes stop counting, a durable destination forgets it, and its replay,
    /// if any, counts it as `delivered` or not. Returns its event.
    fn finish(&mut self, dest: usize, it: Item<P>, delivered: bool) -> Rc<Envelope<P>> {
        self.dests[dest].queued_bytes -= it.env.json.len();
        self.forget(dest, &it.env);
        if let Some(r) = it.replay {
            self.replay_result(r.ticket, delivered);
        }
        it.env
    }

    /// A durable destination (the relay's outbox) forgets an event that left its queue.
    fn forget(&mut self, dest: usize, event: &Rc<Envelope<P>>) {
        if self.dests[dest].spec.durable {
            self.out.push(Command::Store {
                dest,
                event: event.clone(),
                keep: false,
            });
        }
    }

    /// Counts a failed load or delivery of `dest`, keeps it as the last error and reports it.
    fn record_failure(&mut self, dest: usize, error: &DeliveryError) {
        let d = &mut self.dests[dest];
        d.failed += 1;
        d.last_error = Some(error.clone());
        self.out.push(Command::Failed {
            dest,
            error: error.clone(),
        });
    }

    /// Sends an event to the dead-letter queue (`attempts` made since `first`). A replayed one
    /// goes back as the same dead letter, its earlier attempts added and its first failure
    /// kept, counts as failed in its replay and not again in `dead_lettered`.
    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &mut self,
        dest: usize,
        env: Rc<Envelope<P>>,
        error: &DeliveryError,
        mut attempts: u32,
        mut first: u64,
        now: u64,
        replay: Option<Box<Replaying>>,
    ) {
        self.forget(dest, &env);
        let mut id = None;
        let mut ticket = None;
        match replay {
            Some(r) => {
                let Replaying { ticket: t, earlier } = *r;
                attempts = attempts.saturating_add(earlier.attempts);
                first = earlier.first_failed_at;
                id = Some(earlier.id);
                ticket = Some(t);
            }
            None => self.dests[dest].dead_lettered += 1,
        }
        self.out.push(Command::DeadLetter {
            dest,
            id,
            event: env,
            error: error.clone(),
            attempts,
            first_failed_at: first,
            last_failed_at: now,
        });
        if let Some(t) = ticket {
            self.replay_result(t, false);
        }
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
                // A failed load may have injected some of its scripts too.
                if matches!(
                    self.dests[i].state,
                    LoadState::Loading | LoadState::Loaded | LoadState::Failed
                ) {
                    self.out.push(Command::RemoveScripts { dest: i });
                }
                if self.dests[i].state == LoadState::Loading {
                    // Abandon the load (its result is ignored, no retry injects anything while
                    // consent is missing); the next allowed event starts a fresh one.
                    let d = &mut self.dests[i];
                    d.state = LoadState::Registered;
                    d.load_retry_at = None;
                }
            } else if !was
                && is
                && (self.cfg.strategy == Strategy::Eager
                    || self.dests[i].spec.durable
                    || self.dests[i].waiting())
            {
                // Eager loading; a durable destination (the relay), which loads at once as at
                // start, so the `consent` event of this grant reaches it too; or events already
                // routed to it wait (restored from the outbox, or kept through a revocation
                // without purging).
                self.begin_load(i);
            }
        }
        let _ = now;
    }

    /// Drops every undelivered, not-in-flight event of `dest` except consent events, and marks
    /// everything captured so far as never to be sent to it (in-flight ones are not retried).
    fn purge(&mut self, i: usize) {
        let d = &mut self.dests[i];
        d.purge_upto = self.last_seq;
        let n = d.in_flight;
        let rest = d.queue.split_off(n);
        for it in rest {
            if it.env.kind == EventKind::Consent {
                self.dests[i].queue.push(it);
            } else {
                self.finish(i, it, false);
            }
        }
        if self.dests[i].queue.len() == n {
            self.dests[i].retry_at = None;
        }
    }

    /// Re-queues dead letters for `dest` (one attempt each; one that fails goes back as the same
    /// dead letter, see [`Earlier`]); returns a ticket reported by [`Command::ReplayDone`]. Forces a trial through an open circuit breaker: a replay is a
    /// person's explicit request.
    pub fn replay(&mut self, dest: usize, events: Vec<(Envelope<P>, Earlier)>, now: u64) -> u32 {
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
        // An open breaker lets trials through at once (a closed or half-open one is unchanged).
        self.dests[dest].breaker.force_half_open();
        self.dests[dest].retry_at = None;
        if self.dests[dest].state == LoadState::Failed {
            self.retry_destination(dest);
        }
        for (env, earlier) in events {
            let env = self.sequenced(env);
            let durable = self.dests[dest].spec.durable;
            let replay = Some(Box::new(Replaying { ticket, earlier }));
            self.push_item(dest, env, replay, now, durable);
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
                let r = self.replays.swap_remove(pos);
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
        self.begin_load(dest);
    }

    /// Unloads a destination (`unloadDestination`): destroys its instance; undelivered events
    /// stay queued and a later event loads it again.
    pub fn unload_destination(&mut self, dest: usize) {
        let d = &mut self.dests[dest];
        if matches!(
            d.state,
            LoadState::Loading | LoadState::Loaded | LoadState::Failed
        ) {
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

    /// Whether a requested flush is still under way (the `flush()` promise waits for `false`):
    /// a destination's flush ends when what it held is delivered or failed, or when nothing
    /// can be attempted now (offline, a retry backoff, an open circuit breaker; see
    /// [`Manager::poll`]), the events then waiting for their retry, or when it is not loading
    /// or loaded (unloaded, blocked by consent, failed): its events wait for a later load.
    pub fn flushing(&self) -> bool {
        for d in &self.dests {
            let live = matches!(d.state, LoadState::Loading | LoadState::Loaded);
            if d.spec.batch.is_some() && (d.in_flight > 0 || (d.flush_requested && live)) {
                return true;
            }
        }
        false
    }

    /// Tells the manager whether the browser is online; offline, nothing is attempted.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Takes the events a batching destination holds but has not sent, for a beacon at page
    /// hide; report what the browser took with [`Manager::handed_over`]. Nothing while offline,
    /// before it is loaded, or when its last delivery failed (they wait in the outbox for a
    /// later page); while its consent is missing, only the consent changes ahead of the events
    /// kept for it. When the hand-over is `sure` (a beacon: the browser refuses at once what it
    /// will not send) and its last delivery was acknowledged within [`BEACON_TRUST_MS`], the
    /// events leave the queue; otherwise they stay queued (and persisted), and those already
    /// handed over are not taken again.
    pub fn take_unsent(&mut self, dest: usize, now: u64, sure: bool) -> Unsent<P> {
        let allowed = self.allowed(dest);
        let d = &mut self.dests[dest];
        let mut events = Vec::new();
        let keep = !allowed || !sure || d.ok_at.is_none_or(|at| now > at + BEACON_TRUST_MS);
        if d.state != LoadState::Loaded || !self.online || d.failing {
            return Unsent { events, kept: keep };
        }
        let n = d.in_flight;
        // One loop for both: kept events stay queued, taken ones leave it below.
        for it in &d.queue[n..] {
            if !allowed && it.env.kind != EventKind::Consent {
                break;
            }
            if !keep {
                d.queued_bytes -= it.env.json.len();
            } else if it.handed {
                continue;
            }
            events.push(it.env.clone());
        }
        if !keep {
            d.queue.truncate(n);
            d.flush_due = None;
            d.flush_requested = false;
        }
        Unsent { events, kept: keep }
    }

    /// Reports that the browser took the first `taken` of the `events` from
    /// [`Manager::take_unsent`]. Events that left the queue count as delivered and are
    /// forgotten (the rest go back to the front of the queue, in order); events kept queued
    /// are only marked as handed over: still pending, not counted as delivered, and delivered
    /// (and counted) by this page's next delivery or a later page's.
    pub fn handed_over(&mut self, dest: usize, unsent: Unsent<P>, taken: usize, now: u64) {
        let mut events = unsent.events;
        let taken = taken.min(events.len());
        let d = &mut self.dests[dest];
        if unsent.kept {
            let mut left = taken;
            for it in &mut d.queue[d.in_flight..] {
                if left == 0 {
                    break;
                }
                if !it.handed {
                    it.handed = true;
                    left -= 1;
                }
            }
            return;
        }
        let rest = events.split_off(taken);
        if !events.is_empty() {
            d.delivered += events.len() as u64;
            for e in &events {
                self.forget(dest, e);
            }
            self.out.push(Command::Delivered { dest, events });
        }
        if rest.is_empty() {
            return;
        }
        let d = &mut self.dests[dest];
        // After the in-flight items and before the rest (`split_off` and `append`: no
        // `insert` code in the wasm).
        let mut after = d.queue.split_off(d.in_flight);
        for env in rest {
            d.queued_bytes += env.json.len();
            d.queue.push(Item {
                env,
                attempts: 0,
                first_failed_at: 0,
                replay: None,
                handed: false,
            });
        }
        d.queue.append(&mut after);
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
            if !self.online || d.state != LoadState::Loaded || d.in_flight > 0 || d.queue.is_empty()
            {
                continue;
            }
            // The next attempt waits for both the retry backoff and an open breaker.
            let blocked = match (d.retry_at, d.breaker.next_attempt_at()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            match blocked {
                Some(at) => consider(Some(at)),
                None if !d.flush_requested => consider(d.flush_due),
                None => {}
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
        let allowed = self.allowed(i);
        let d = &mut self.dests[i];
        if d.state == LoadState::Loading {
            if let Some(at) = d.load_retry_at {
                if at <= now {
                    d.load_retry_at = None;
                    self.load_command(i);
                }
            }
            return;
        }
        if d.state != LoadState::Loaded || d.in_flight > 0 || d.queue.is_empty() {
            return;
        }
        if !self.online || d.retry_at.is_some_and(|at| at > now) {
            // Nothing can be attempted now: a requested flush ends, its events wait.
            d.flush_requested = false;
            return;
        }
        // While its consent is missing, only consent changes go to it: events kept through a
        // revocation (without purging) wait for consent to come back.
        let mut cap = usize::MAX;
        if !allowed {
            cap = changes_from(&d.queue, 0);
            if cap == 0 {
                d.flush_requested = false;
                return;
            }
        }
        let take = match d.spec.batch {
            None => 1,
            Some(b) => {
                let due = d.flush_requested
                    || d.queue.len() >= b.max_events
                    || d.queued_bytes >= b.max_bytes
                    || d.flush_due.is_some_and(|at| at <= now)
                    || d.queue
                        .first()
                        .is_some_and(|it| it.attempts > 0 || it.replay.is_some());
                if !due {
                    return;
                }
                let mut n = 0;
                let mut bytes = 0;
                for it in d.queue.iter().take(b.max_events.min(cap)) {
                    // An event larger than max_bytes still goes, alone.
                    let len = it.env.json.len() + 1;
                    if n > 0 && bytes + len > b.max_bytes {
                        break;
                    }
                    bytes += len;
                    n += 1;
                }
                n
            }
        };
        if !d.breaker.try_acquire(now) {
            // The circuit is open: a requested flush ends, its events wait for the trial.
            d.flush_requested = false;
            return;
        }
        d.retry_at = None;
        d.in_flight = take;
        if let Some(b) = d.spec.batch {
            if d.queue.len() == take {
                d.flush_requested = false;
                d.flush_due = None;
            } else {
                d.flush_due = Some(now + b.interval_ms);
            }
        }
        let mut events = Vec::with_capacity(take);
        for it in &d.queue[..take] {
            events.push(it.env.clone());
        }
        self.out.push(Command::Deliver { dest: i, events });
    }

    /// The status of every destination, in config order.
    pub fn status(&self, now: u64) -> Vec<DestStatus> {
        let mut all = Vec::with_capacity(self.dests.len());
        for d in &self.dests {
            all.push(DestStatus {
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
                skipped: d.skipped,
                pending: d.queue.len(),
                last_error: d.last_error.clone(),
            });
        }
        all
    }
}

/// Removes and returns the first `n` items of `v` (all of them when it holds fewer), in order.
/// (`split_off` and a swap: no `Drain` code in the wasm.)
fn take_front<T>(v: &mut Vec<T>, n: usize) -> Vec<T> {
    let rest = v.split_off(n.min(v.len()));
    std::mem::replace(v, rest)
}

fn env_kind_loads(kind: Option<EventKind>) -> bool {
    matches!(kind, Some(k) if k != EventKind::Consent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Purpose;
    use crate::ports::SeededRng;

    type Cmds = Vec<Command<u32>>;

    fn spec(id: &str, req: &[Purpose]) -> DestSpec {
        DestSpec {
            id: id.into(),
            required: Purposes::of(req),
            batch: None,
            durable: false,
        }
    }

    fn env(seq: u64, consent: Consent) -> Envelope<u32> {
        Envelope {
            seq,
            kind: EventKind::Track,
            consent: consent.granted(),
            message_id: seq.to_string().into(),
            json: "{\"type\":\"track\"}".into(),
            payload: seq as u32,
        }
    }

    fn consent(list: &[Purpose]) -> Consent {
        Consent::initial(Purposes::of(list), false, true)
    }

    fn manager(cfg: ManagerConfig, specs: Vec<DestSpec>, c: Consent) -> Manager<u32> {
        Manager::new(cfg, specs, c, Box::new(SeededRng::new(1)))
    }

    fn loads(cmds: &Cmds) -> Vec<usize> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Load { dest, .. } => Some(*dest),
                _ => None,
            })
            .collect()
    }

    fn delivers(cmds: &Cmds) -> Vec<(usize, Vec<u32>)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Deliver { dest, events } => {
                    Some((*dest, events.iter().map(|e| e.payload).collect()))
                }
                _ => None,
            })
            .collect()
    }

    /// The history of a dead letter `dl<n>` that failed three times, first at `n`.
    fn earlier(n: u64) -> Earlier {
        Earlier {
            id: format!("dl{n}"),
            attempts: 3,
            first_failed_at: n,
        }
    }

    fn dead(cmds: &Cmds) -> Vec<(usize, u32)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::DeadLetter { dest, event, .. } => Some((*dest, event.payload)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lazy_destination_loads_once_on_first_allowed_event_and_buffers_in_order() {
        let c = consent(&[Purpose::Measurement]);
        let mut m = manager(
            ManagerConfig::default(),
            vec![spec("a", &[Purpose::Measurement])],
            c,
        );
        assert!(
            loads(&m.start(0)).is_empty(),
            "lazy: nothing loads at start"
        );
        m.capture(env(1, c), 0);
        m.capture(env(2, c), 0);
        let cmds = m.poll(0);
        assert_eq!(loads(&cmds), vec![0], "concurrent triggers share one load");
        assert!(delivers(&cmds).is_empty(), "buffered while loading");
        m.capture(env(3, c), 1);
        assert!(loads(&m.poll(1)).is_empty());
        let cmds = m.load_done(0, Ok(()), 2);
        assert_eq!(delivers(&cmds), vec![(0, vec![1])]);
        let cmds = m.delivery_done(0, Outcome::Ok, 3);
        assert_eq!(delivers(&cmds), vec![(0, vec![2])]);
        let cmds = m.delivery_done(0, Outcome::Ok, 3);
        assert_eq!(delivers(&cmds), vec![(0, vec![3])]);
        m.delivery_done(0, Outcome::Ok, 3);
        assert_eq!(m.status(3)[0].delivered, 3);
        assert_eq!(m.status(3)[0].state, LoadState::Loaded);
    }

    #[test]
    fn loaded_only_while_loaded_and_allowed_as_status_says() {
        let c = consent(&[Purpose::Marketing]);
        let cfg = ManagerConfig {
            load_max_retries: 0,
            ..Default::default()
        };
        let mut m = manager(
            cfg,
            vec![spec("m", &[Purpose::Marketing]), spec("f", &[])],
            c,
        );
        assert!(!m.loaded(0), "registered");
        m.capture(env(1, c), 0);
        assert_eq!(loads(&m.poll(0)), vec![0, 1]);
        assert!(!m.loaded(0), "loading");
        m.load_done(0, Ok(()), 1);
        assert!(m.loaded(0));
        m.load_done(1, Err(DeliveryError::new(ErrorKind::ScriptLoad, "404")), 1);
        assert!(!m.loaded(1), "failed");
        m.set_consent(consent(&[]), 2);
        assert_eq!(m.status(2)[0].state, LoadState::Blocked);
        assert!(!m.loaded(0), "consent revoked");
        m.set_consent(c, 3);
        assert!(m.loaded(0));
        m.unload_destination(0);
        assert!(!m.loaded(0), "unloaded");
    }

    #[test]
    fn event_without_consent_neither_loads_nor_reaches_the_destination() {
        let c = consent(&[]);
        let mut m = manager(
            ManagerConfig::default(),
            vec![spec("m", &[Purpose::Marketing])],
            c,
        );
        m.capture(env(1, c), 0);
        let cmds = m.poll(0);
        assert!(loads(&cmds).is_empty() && delivers(&cmds).is_empty());
        assert_eq!(m.status(0)[0].state, LoadState::Blocked);
        // Granting later does not send the event captured without consent.
        let granted = consent(&[Purpose::Marketing]);
        m.set_consent(granted, 1);
        assert!(
            loads(&m.poll(1)).is_empty(),
            "lazy: the grant alone loads nothing"
        );
        m.capture(env(2, granted), 2);
        assert_eq!(loads(&m.poll(2)), vec![0]);
        assert_eq!(delivers(&m.load_done(0, Ok(()), 3)), vec![(0, vec![2])]);
    }

    #[test]
    fn eager_strategy_loads_allowed_destinations_at_start_and_on_grant() {
        let cfg = ManagerConfig {
            strategy: Strategy::Eager,
            ..Default::default()
        };
        let c = consent(&[]);
        let mut m = manager(
            cfg,
            vec![spec("n", &[]), spec("m", &[Purpose::Marketing])],
            c,
        );
        assert_eq!(loads(&m.start(0)), vec![0]);
        m.set_consent(consent(&[Purpose::Marketing]), 1);
        assert_eq!(loads(&m.poll(1)), vec![1]);
    }

    #[test]
    fn failed_load_retries_with_backoff_then_fails_and_dead_letters_buffer() {
        let cfg = ManagerConfig {
            load_max_retries: 2,
            retry: RetryPolicy {
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let c = consent(&[]);
        let mut m = manager(cfg, vec![spec("a", &[])], c);
        m.capture(env(1, c), 0);
        assert_eq!(loads(&m.poll(0)), vec![0]);
        let err = || DeliveryError::new(ErrorKind::ScriptLoad, "404");
        let cmds = m.load_done(0, Err(err()), 10);
        assert!(loads(&cmds).is_empty(), "waits for the backoff");
        let at = m.next_wake().expect("a retry is scheduled");
        assert!(at > 10);
        assert_eq!(loads(&m.poll(at)), vec![0]);
        m.load_done(0, Err(err()), at);
        let at = m.next_wake().unwrap();
        assert_eq!(loads(&m.poll(at)), vec![0]);
        let cmds = m.load_done(0, Err(err()), at);
        assert_eq!(dead(&cmds), vec![(0, 1)]);
        assert_eq!(m.status(at)[0].state, LoadState::Failed);
        assert_eq!(m.next_wake(), None);
        // New events for a failed destination are dead-lettered, not lost.
        m.capture(env(2, c), at);
        assert_eq!(dead(&m.poll(at)), vec![(0, 2)]);
        // retryDestination tries again.
        m.retry_destination(0);
        assert_eq!(loads(&m.poll(at)), vec![0]);
    }

    #[test]
    fn revocation_during_a_load_abandons_it_and_never_retries_without_consent() {
        let c = consent(&[Purpose::Marketing]);
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], c);
        m.capture(env(1, c), 0);
        assert_eq!(loads(&m.poll(0)), vec![0]);
        let failed = || DeliveryError::new(ErrorKind::ScriptLoad, "revoked");
        // A failed first attempt schedules a retry...
        m.load_done(0, Err(failed()), 1);
        assert!(m.next_wake().is_some());
        // ...which the revocation cancels: nothing loads while consent is missing.
        m.set_consent(consent(&[]), 2);
        let cmds = m.poll(2);
        assert!(cmds
            .iter()
            .any(|c| matches!(c, Command::RemoveScripts { dest: 0 })));
        assert_eq!(m.next_wake(), None);
        assert!(loads(&m.poll(100_000)).is_empty());
        assert_eq!(m.status(3)[0].state, LoadState::Blocked);
        // A load still under way when consent goes is ignored when it ends.
        let granted = consent(&[Purpose::Marketing]);
        m.set_consent(granted, 4);
        m.capture(env(2, granted), 4);
        assert_eq!(loads(&m.poll(4)), vec![0]);
        m.set_consent(consent(&[]), 5);
        let cmds = m.load_done(0, Ok(()), 6);
        assert!(!cmds.iter().any(|c| matches!(c, Command::Loaded { .. })));
        assert!(delivers(&cmds).is_empty());
        // After a re-grant the next event loads it afresh, once.
        m.set_consent(granted, 7);
        m.capture(env(3, granted), 7);
        assert_eq!(loads(&m.poll(7)), vec![0]);
        assert_eq!(delivers(&m.load_done(0, Ok(()), 8)), vec![(0, vec![3])]);
    }

    /// Whatever asks for a load (retryDestination, a dead-letter replay, a restored outbox),
    /// nothing loads while the destination's consent is missing.
    #[test]
    fn no_load_of_any_origin_without_consent() {
        let granted = consent(&[Purpose::Marketing]);
        let none = consent(&[]);
        let cfg = ManagerConfig {
            load_max_retries: 0,
            purge_on_revoke: false,
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
        m.capture(env(1, granted), 0);
        assert_eq!(loads(&m.poll(0)), vec![0]);
        m.load_done(0, Err(DeliveryError::new(ErrorKind::ScriptLoad, "404")), 1);
        assert_eq!(m.status(1)[0].state, LoadState::Failed);
        m.set_consent(none, 2);
        // A consent event queued for it does not make retryDestination load it.
        let mut e = env(2, none);
        e.kind = EventKind::Consent;
        m.capture(e, 2);
        m.retry_destination(0);
        assert!(loads(&m.poll(3)).is_empty());
        m.replay(0, vec![(env(3, granted), earlier(3))], 3);
        m.restore(0, env(4, granted), 3);
        assert!(loads(&m.poll(4)).is_empty());
        assert_eq!(m.status(4)[0].state, LoadState::Blocked);
        // Once consent is back, the events waiting for it load it (lazy strategy too).
        m.set_consent(granted, 5);
        assert_eq!(loads(&m.poll(5)), vec![0]);
        // (One event at a time: it does not batch.)
        assert_eq!(delivers(&m.load_done(0, Ok(()), 6)), vec![(0, vec![3])]);
    }

    #[test]
    fn buffer_overflow_goes_to_dead_letters_with_one_warning() {
        let cfg = ManagerConfig {
            buffer_limit: 2,
            ..Default::default()
        };
        let c = consent(&[]);
        let mut m = manager(cfg, vec![spec("a", &[])], c);
        for i in 1..=4 {
            m.capture(env(i, c), 0);
        }
        let cmds = m.poll(0);
        assert_eq!(dead(&cmds), vec![(0, 3), (0, 4)]);
        let warns = cmds
            .iter()
            .filter(|c| matches!(c, Command::Warn { .. }))
            .count();
        assert_eq!(warns, 1);
    }

    #[test]
    fn revocation_purges_undelivered_events_and_removes_scripts() {
        let c = consent(&[Purpose::Marketing]);
        let mut m = manager(
            ManagerConfig::default(),
            vec![spec("m", &[Purpose::Marketing])],
            c,
        );
        m.capture(env(1, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0); // 1 in flight
        m.capture(env(2, c), 0);
        m.capture(env(3, c), 0);
        m.set_consent(consent(&[]), 1);
        let cmds = m.poll(1);
        assert!(cmds
            .iter()
            .any(|c| matches!(c, Command::RemoveScripts { dest: 0 })));
        assert!(cmds
            .iter()
            .any(|c| matches!(c, Command::PurgeDeadLetters { dest: 0 })));
        // The in-flight event finishes; nothing captured earlier is sent afterwards.
        let cmds = m.delivery_done(0, Outcome::Ok, 2);
        assert!(delivers(&cmds).is_empty());
        assert_eq!(m.status(2)[0].pending, 0);
        assert_eq!(m.status(2)[0].state, LoadState::Blocked);
        // A consent event still reaches the loaded (revoked) destination.
        let mut e = env(4, consent(&[]));
        e.kind = EventKind::Consent;
        m.capture(e, 3);
        assert_eq!(delivers(&m.poll(3)), vec![(0, vec![4])]);
    }

    #[test]
    fn retryable_failures_back_off_keep_order_then_dead_letter() {
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                max_retries: 1,
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let c = consent(&[]);
        let mut m = manager(cfg, vec![spec("a", &[])], c);
        m.capture(env(1, c), 0);
        m.capture(env(2, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        let cmds = m.delivery_done(0, Outcome::Err(DeliveryError::http(503, None)), 1);
        assert!(
            delivers(&cmds).is_empty(),
            "waits for the backoff, 2 stays behind 1"
        );
        let at = m.next_wake().unwrap();
        assert_eq!(delivers(&m.poll(at)), vec![(0, vec![1])]);
        let cmds = m.delivery_done(0, Outcome::Err(DeliveryError::http(503, None)), at);
        assert_eq!(dead(&cmds), vec![(0, 1)], "max_retries 1 = two attempts");
        assert_eq!(delivers(&cmds), vec![(0, vec![2])]);
    }

    #[test]
    fn open_circuit_holds_events_without_dropping_them_until_a_trial_succeeds() {
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                max_retries: 10,
                base_delay_ms: 10,
                max_delay_ms: 10,
                jitter: false,
                ..Default::default()
            },
            breaker: BreakerConfig {
                failure_threshold: 2,
                recovery_timeout_ms: 1000,
                half_open_successes: 1,
            },
            ..Default::default()
        };
        let c = consent(&[]);
        let mut m = manager(cfg, vec![spec("a", &[]), spec("b", &[])], c);
        m.capture(env(1, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        m.load_done(1, Ok(()), 0);
        m.delivery_done(1, Outcome::Ok, 0);
        let fail = || Outcome::Err(DeliveryError::http(503, None));
        m.delivery_done(0, fail(), 1);
        assert_eq!(delivers(&m.poll(11)), vec![(0, vec![1])]);
        m.delivery_done(0, fail(), 11);
        assert_eq!(m.status(11)[0].circuit, BreakerState::Open);
        // The other destination is unaffected.
        assert_eq!(m.status(11)[1].circuit, BreakerState::Closed);
        m.capture(env(2, c), 12);
        let cmds = m.poll(500);
        assert!(
            delivers(&cmds).iter().all(|(d, _)| *d == 1),
            "nothing attempted while open"
        );
        m.delivery_done(1, Outcome::Ok, 500);
        assert_eq!(m.status(500)[0].pending, 2, "events wait, not dropped");
        assert_eq!(m.status(500)[0].dead_lettered, 0);
        assert_eq!(m.next_wake(), Some(1011));
        assert_eq!(
            delivers(&m.poll(1011)),
            vec![(0, vec![1])],
            "one half-open trial"
        );
        m.delivery_done(0, Outcome::Ok, 1012);
        assert_eq!(m.status(1012)[0].circuit, BreakerState::Closed);
        assert_eq!(m.status(1012)[0].pending, 1);
    }

    /// Events a destination skipped are done with but counted as skipped, not delivered, and
    /// not reported as delivered; a failed delivery forgets what was skipped in it.
    #[test]
    fn skipped_events_count_as_skipped_not_delivered() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![spec("js", &[])], c);
        m.capture(env(1, c), 0);
        m.capture(env(2, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        m.skipped(0, vec!["1".into()]);
        let cmds = m.delivery_done(0, Outcome::Ok, 0);
        assert_eq!(
            delivered_cmds(&cmds),
            0,
            "no delivered report for a skipped event"
        );
        let cmds = m.delivery_done(0, Outcome::Ok, 0);
        assert_eq!(delivered_cmds(&cmds), 1);
        let st = &m.status(0)[0];
        assert_eq!((st.delivered, st.skipped, st.pending), (1, 1, 0));
    }

    #[test]
    fn validation_errors_are_not_retried() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![spec("a", &[])], c);
        m.capture(env(1, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        let cmds = m.delivery_done(0, Outcome::Err(DeliveryError::http(400, None)), 1);
        assert_eq!(dead(&cmds), vec![(0, 1)]);
    }

    #[test]
    fn offline_outcome_counts_nothing_and_waits() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![spec("a", &[])], c);
        m.capture(env(1, c), 0);
        m.poll(0);
        m.set_online(false);
        assert!(
            delivers(&m.load_done(0, Ok(()), 0)).is_empty(),
            "nothing attempted offline"
        );
        m.set_online(true);
        assert_eq!(delivers(&m.poll(1)), vec![(0, vec![1])]);
        m.set_online(false);
        let cmds = m.delivery_done(0, Outcome::Offline, 2);
        assert!(delivers(&cmds).is_empty());
        assert_eq!(m.status(2)[0].failed, 0);
        m.set_online(true);
        assert_eq!(delivers(&m.poll(3)), vec![(0, vec![1])]);
    }

    /// A relay needing consent loads when it is granted, so the grant's own `consent` event
    /// reaches it (as at start, a durable destination does not wait for a first event).
    #[test]
    fn a_relay_loads_on_the_grant_and_gets_its_consent_event() {
        let none = consent(&[]);
        let mut spec = relay(10, 1_000_000);
        spec.required = Purposes::of(&[Purpose::Measurement]);
        let mut m = manager(ManagerConfig::default(), vec![spec], none);
        assert!(loads(&m.start(0)).is_empty(), "blocked at start");
        let granted = consent(&[Purpose::Measurement]);
        m.set_consent(granted, 1);
        let mut e = env(1, granted);
        e.kind = EventKind::Consent;
        m.capture(e, 1);
        assert_eq!(loads(&m.poll(1)), vec![0]);
        m.request_flush();
        assert_eq!(delivers(&m.load_done(0, Ok(()), 2)), vec![(0, vec![1])]);
    }

    /// Without purging, events kept through a revocation wait for consent to come back: none
    /// is sent while it is missing, not even by its retry.
    /// With lazy loading a grant loads nothing, but the destination it allows hears its
    /// `consent` event first when its first event loads it (only the latest of several).
    #[test]
    fn a_lazy_destination_hears_the_grant_that_allowed_it_when_it_loads() {
        let none = consent(&[]);
        let mut m = manager(
            ManagerConfig::default(),
            vec![
                spec("m", &[Purpose::Marketing]),
                spec("s", &[Purpose::Measurement]),
            ],
            none,
        );
        let granted = consent(&[Purpose::Marketing]);
        for n in 1..=2 {
            m.set_consent(granted, n);
            let mut e = env(n, granted);
            e.kind = EventKind::Consent;
            m.capture(e, n);
            assert!(loads(&m.poll(n)).is_empty(), "a grant alone loads nothing");
        }
        assert_eq!(m.status(2)[0].pending, 1, "the latest change only");
        assert_eq!(
            m.status(2)[1].pending,
            0,
            "not for one the change does not allow"
        );
        m.capture(env(3, granted), 3);
        assert_eq!(loads(&m.poll(3)), vec![0]);
        let cmds = m.load_done(0, Ok(()), 3);
        assert_eq!(
            delivers(&cmds),
            vec![(0, vec![2])],
            "the consent change first"
        );
        let cmds = m.delivery_done(0, Outcome::Ok, 3);
        assert_eq!(delivers(&cmds), vec![(0, vec![3])]);
    }

    #[test]
    fn kept_events_wait_while_consent_is_missing() {
        let granted = consent(&[Purpose::Marketing]);
        let cfg = ManagerConfig {
            purge_on_revoke: false,
            retry: RetryPolicy {
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
        m.capture(env(1, granted), 0);
        m.poll(0);
        assert_eq!(delivers(&m.load_done(0, Ok(()), 1)), vec![(0, vec![1])]);
        let failed = DeliveryError::new(ErrorKind::Server, "503");
        m.delivery_done(0, Outcome::Err(failed), 2);
        m.set_consent(consent(&[]), 3);
        assert!(
            delivers(&m.poll(100_000)).is_empty(),
            "not sent while revoked"
        );
        assert_eq!(m.status(100_000)[0].pending, 1);
        m.set_consent(granted, 100_001);
        assert_eq!(delivers(&m.poll(100_001)), vec![(0, vec![1])]);
    }

    /// Without purging, a revocation still reaches the destination at once: its notice goes
    /// ahead of the kept events, which wait for consent to come back, then go in order.
    #[test]
    fn revocation_notice_passes_kept_events() {
        let granted = consent(&[Purpose::Marketing]);
        let none = consent(&[]);
        let cfg = ManagerConfig {
            purge_on_revoke: false,
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
        m.capture(env(1, granted), 0);
        m.capture(env(2, granted), 0);
        m.poll(0);
        assert_eq!(delivers(&m.load_done(0, Ok(()), 1)), vec![(0, vec![1])]);
        m.set_consent(none, 2);
        let notice = |id, c| {
            let mut e = env(id, c);
            e.kind = EventKind::Consent;
            e
        };
        m.capture(notice(3, none), 2);
        assert_eq!(
            delivers(&m.delivery_done(0, Outcome::Ok, 3)),
            vec![(0, vec![3])],
            "the notice, not event 2"
        );
        assert!(
            delivers(&m.delivery_done(0, Outcome::Ok, 4)).is_empty(),
            "event 2 waits"
        );
        assert!(delivers(&m.poll(5)).is_empty());
        assert_eq!(m.status(5)[0].pending, 1);
        m.set_consent(granted, 6);
        m.capture(notice(4, granted), 6);
        assert_eq!(delivers(&m.poll(6)), vec![(0, vec![2])]);
        assert_eq!(
            delivers(&m.delivery_done(0, Outcome::Ok, 7)),
            vec![(0, vec![4])]
        );
    }

    /// An event captured before a revocation but routed after it (a source middleware held
    /// it): dropped for the revoked destination, as the purge would drop it; kept (waiting for
    /// consent) with the purge off.
    #[test]
    fn an_event_routed_after_a_revocation_follows_the_purge_setting() {
        let granted = consent(&[Purpose::Marketing]);
        for (purge, pending) in [(true, 0), (false, 1)] {
            let cfg = ManagerConfig {
                purge_on_revoke: purge,
                ..Default::default()
            };
            let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
            m.set_consent(consent(&[]), 1);
            m.capture(env(1, granted), 2);
            assert!(delivers(&m.poll(2)).is_empty());
            assert_eq!(m.status(2)[0].pending, pending, "purge {purge}");
        }
    }

    /// A destination whose load failed may have injected some of its scripts: a revocation
    /// removes them, and `unloadDestination` destroys it.
    #[test]
    fn a_failed_destination_loses_its_scripts_on_revocation_and_unload() {
        let granted = consent(&[Purpose::Marketing]);
        let cfg = ManagerConfig {
            load_max_retries: 0,
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
        m.capture(env(1, granted), 0);
        m.poll(0);
        m.load_done(0, Err(DeliveryError::new(ErrorKind::ScriptLoad, "404")), 1);
        assert_eq!(m.status(1)[0].state, LoadState::Failed);
        m.set_consent(consent(&[]), 2);
        assert!(m
            .poll(2)
            .iter()
            .any(|c| matches!(c, Command::RemoveScripts { dest: 0 })));
        let mut m2 = manager(
            ManagerConfig {
                load_max_retries: 0,
                ..Default::default()
            },
            vec![spec("m", &[Purpose::Marketing])],
            granted,
        );
        m2.capture(env(1, granted), 0);
        m2.poll(0);
        m2.load_done(0, Err(DeliveryError::new(ErrorKind::ScriptLoad, "404")), 1);
        m2.unload_destination(0);
        assert!(m2
            .poll(2)
            .iter()
            .any(|c| matches!(c, Command::Destroy { dest: 0 })));
    }

    /// A delivery the engine withheld because consent was revoked after it was asked for:
    /// its events are dropped as the purge drops them, or kept with the purge off.
    #[test]
    fn a_withheld_delivery_follows_the_purge_setting() {
        let granted = consent(&[Purpose::Marketing]);
        for (purge, pending) in [(true, 0), (false, 1)] {
            let cfg = ManagerConfig {
                purge_on_revoke: purge,
                ..Default::default()
            };
            let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
            m.capture(env(1, granted), 0);
            m.poll(0);
            assert_eq!(delivers(&m.load_done(0, Ok(()), 1)), vec![(0, vec![1])]);
            m.set_consent(consent(&[]), 2);
            assert!(delivers(&m.delivery_withheld(0, 3)).is_empty());
            let st = &m.status(3)[0];
            assert_eq!(
                (st.pending, st.delivered, st.failed),
                (pending, 0, 0),
                "purge {purge}"
            );
        }
    }

    /// The attempts of the `Load` commands in `cmds`.
    fn attempts(cmds: &Cmds) -> Vec<u32> {
        let mut out = Vec::new();
        for c in cmds {
            if let Command::Load { attempt, .. } = c {
                out.push(*attempt);
            }
        }
        out
    }

    /// Consent flipping during loads: the abandoned loads' late results count for nothing, so
    /// the current load is neither failed nor doubled by them.
    #[test]
    fn late_results_of_abandoned_loads_are_ignored() {
        let granted = consent(&[Purpose::Marketing]);
        let cfg = ManagerConfig {
            load_max_retries: 1,
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("m", &[Purpose::Marketing])], granted);
        let mut started = Vec::new();
        for t in 0..4 {
            m.set_consent(granted, t);
            m.capture(env(t + 1, granted), t);
            started.extend(attempts(&m.poll(t)));
            m.set_consent(consent(&[]), t);
        }
        m.set_consent(granted, 10);
        m.capture(env(9, granted), 10);
        started.extend(attempts(&m.poll(10)));
        assert_eq!(started, vec![1, 2, 3, 4, 5]);
        let revoked = || DeliveryError::new(ErrorKind::ScriptLoad, "consent revoked while loading");
        for a in 1..5 {
            let cmds = m.load_ended(0, a, Err(revoked()), 11);
            assert!(attempts(&cmds).is_empty() && dead(&cmds).is_empty());
        }
        assert_eq!(m.next_wake(), None, "no retry scheduled by a stale failure");
        let st = &m.status(11)[0];
        assert_eq!((st.state, st.failed), (LoadState::Loading, 0));
        assert!(!m.load_wanted(0, 4) && m.load_wanted(0, 5));
        assert_eq!(
            delivers(&m.load_ended(0, 5, Ok(()), 12)),
            vec![(0, vec![9])]
        );
    }

    /// A flush does not wait for a destination that cannot send: unloaded, or blocked.
    #[test]
    fn a_flush_does_not_wait_for_an_unloaded_or_blocked_destination() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![relay(10, 1_000_000)], c);
        m.start(0);
        m.load_done(0, Ok(()), 0);
        // Queued (the flush interval has not passed), then unloaded: the event stays queued.
        m.capture(env(1, c), 1);
        m.poll(1);
        m.unload_destination(0);
        m.request_flush();
        m.poll(2);
        assert!(!m.flushing(), "nothing can be sent until it loads again");
        assert_eq!(m.status(2)[0].pending, 1);
    }

    /// `Analytics.load` alone delivers an earlier page's outbox, at once, before new events.
    #[test]
    fn a_restored_backlog_goes_at_once_before_new_events() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![relay(10, 1_000_000)], c);
        m.restore(0, env(1, c), 0);
        m.restore(0, env(2, c), 0);
        assert_eq!(loads(&m.start(0)), vec![0]);
        m.capture(env(3, c), 1);
        // Well before the flush interval (1000 ms).
        let cmds = m.load_done(0, Ok(()), 2);
        assert_eq!(delivers(&cmds), vec![(0, vec![1, 2, 3])]);
    }

    fn relay(max_events: usize, max_bytes: usize) -> DestSpec {
        DestSpec {
            id: "relay".into(),
            required: Purposes::NONE,
            batch: Some(BatchLimits {
                max_events,
                max_bytes,
                interval_ms: 1000,
            }),
            durable: true,
        }
    }

    /// A loaded relay (batches of 10) with the default retry policy but no jitter.
    fn loaded_relay(cfg: ManagerConfig, c: Consent) -> Manager<u32> {
        let mut m = manager(cfg, vec![relay(10, 1_000_000)], c);
        m.start(0);
        m.load_done(0, Ok(()), 0);
        m
    }

    fn no_jitter() -> ManagerConfig {
        ManagerConfig {
            retry: RetryPolicy {
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// An outage longer than `retry.maxRetries` attempts: the relay's events stay in its queue
    /// (and outbox) and are delivered once the backend answers again; none is dead-lettered.
    #[test]
    fn a_relay_outage_past_max_retries_loses_nothing() {
        let c = consent(&[]);
        let mut m = loaded_relay(no_jitter(), c);
        for i in 1..=3 {
            m.capture(env(i, c), 0);
        }
        m.request_flush();
        let mut t = 0;
        let mut cmds = m.poll(t);
        for failure in 0..12 {
            assert_eq!(
                delivers(&cmds),
                vec![(0, vec![1, 2, 3])],
                "attempt {failure}"
            );
            let error = match failure % 4 {
                0 => DeliveryError::http(503, None),
                1 => DeliveryError::http(429, Some(2_000)),
                2 => DeliveryError::new(ErrorKind::Network, "offline"),
                _ => DeliveryError::new(ErrorKind::Timeout, "late"),
            };
            let done = m.delivery_done(0, Outcome::Err(error), t);
            assert!(
                dead(&done).is_empty(),
                "no dead letter after {failure} failures"
            );
            t = m.next_wake().expect("a retry is scheduled");
            cmds = m.poll(t);
        }
        assert!(t >= 12 * 1_000, "the backoff still applies");
        let done = m.delivery_done(0, Outcome::Ok, t);
        assert_eq!(delivered_cmds(&done), 3);
        assert_eq!(m.status(t)[0].dead_lettered, 0);
    }

    /// The outage rule is the relay's alone, and only for retryable failures and events younger
    /// than `durable_ttl_ms`.
    #[test]
    fn a_relay_dead_letters_only_what_is_not_retryable_or_too_old() {
        let c = consent(&[]);
        let mut m = loaded_relay(no_jitter(), c);
        m.capture(env(1, c), 0);
        m.request_flush();
        m.poll(0);
        let done = m.delivery_done(0, Outcome::Err(DeliveryError::http(400, None)), 0);
        assert_eq!(dead(&done), vec![(0, 1)], "validation is never retried");

        let cfg = ManagerConfig {
            durable_ttl_ms: 60_000,
            ..no_jitter()
        };
        let mut m = loaded_relay(cfg, c);
        m.capture(env(2, c), 0);
        m.request_flush();
        let mut t = 0;
        m.poll(t);
        let mut dead_at = None;
        for _ in 0..20 {
            let done = m.delivery_done(0, Outcome::Err(DeliveryError::http(500, None)), t);
            if !dead(&done).is_empty() {
                dead_at = Some(t);
                break;
            }
            t = m.next_wake().expect("a retry is scheduled");
            m.poll(t);
        }
        let dead_at = dead_at.expect("dead-lettered once older than the ttl");
        assert!(dead_at >= 60_000, "not before the ttl: {dead_at}");

        // A destination without a durable store keeps `retry.maxRetries`.
        let mut m = manager(no_jitter(), vec![spec("js", &[])], c);
        m.capture(env(3, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        let mut t = 0;
        for attempt in 1..=4 {
            let done = m.delivery_done(0, Outcome::Err(DeliveryError::http(503, None)), t);
            assert_eq!(dead(&done).is_empty(), attempt < 4, "attempt {attempt}");
            if let Some(at) = m.next_wake() {
                t = at;
                m.poll(t);
            }
        }
    }

    /// A relay's queue is not cut to `loading.bufferLimit` (an offline backlog is delivered in
    /// full by the next page), while another destination's still is.
    #[test]
    fn a_relay_backlog_is_not_bounded_by_the_buffer_limit() {
        let cfg = ManagerConfig {
            buffer_limit: 5,
            ..no_jitter()
        };
        let c = consent(&[]);
        let mut m = manager(cfg, vec![relay(20, 1_000_000)], c);
        for i in 1..=60 {
            m.restore(0, env(i, c), 0);
        }
        for i in 61..=80 {
            m.capture(env(i, c), 0);
        }
        let cmds = m.start(0);
        assert!(dead(&cmds).is_empty());
        m.request_flush();
        let mut cmds = m.load_done(0, Ok(()), 0);
        let mut got = Vec::new();
        while got.len() < 80 {
            assert!(dead(&cmds).is_empty());
            let batch = delivers(&cmds);
            assert_eq!(batch.len(), 1, "one batch at a time");
            assert!(batch[0].1.len() <= 20, "in batches");
            got.extend(batch[0].1.iter().copied());
            m.request_flush();
            cmds = m.delivery_done(0, Outcome::Ok, 0);
        }
        assert_eq!(got, (1..=80).collect::<Vec<u32>>(), "in full, in order");
    }

    #[test]
    fn batches_flush_on_count_bytes_interval_and_request() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![relay(3, 1_000_000)], c);
        m.capture(env(1, c), 0);
        let cmds = m.poll(0);
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Command::Store { keep: true, .. }))
                .count(),
            1
        );
        m.load_done(0, Ok(()), 0);
        assert!(delivers(&m.poll(10)).is_empty(), "waits for more events");
        m.capture(env(2, c), 20);
        m.capture(env(3, c), 20);
        assert_eq!(
            delivers(&m.poll(20)),
            vec![(0, vec![1, 2, 3])],
            "batchSize reached"
        );
        let cmds = m.delivery_done(0, Outcome::Ok, 30);
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Command::Store { keep: false, .. }))
                .count(),
            3
        );
        m.capture(env(4, c), 40);
        assert!(delivers(&m.poll(40)).is_empty());
        assert_eq!(m.next_wake(), Some(1040));
        assert_eq!(
            delivers(&m.poll(1040)),
            vec![(0, vec![4])],
            "flushIntervalMs"
        );
        m.delivery_done(0, Outcome::Ok, 1041);
        m.capture(env(5, c), 1050);
        m.request_flush();
        assert!(m.flushing());
        assert_eq!(delivers(&m.poll(1050)), vec![(0, vec![5])], "flush()");
        m.delivery_done(0, Outcome::Ok, 1051);
        assert!(!m.flushing());
        // maxBatchBytes: each event is 16 bytes and a separator, so 34 bytes fit two, 33 one.
        for (max, first) in [(34, vec![1, 2]), (33, vec![1])] {
            let mut m = manager(ManagerConfig::default(), vec![relay(100, max)], c);
            for i in 1..=3 {
                m.capture(env(i, c), 0);
            }
            m.poll(0);
            assert_eq!(delivers(&m.load_done(0, Ok(()), 0)), vec![(0, first)]);
        }
    }

    fn stores(cmds: &Cmds, keep: bool) -> usize {
        let mut n = 0;
        for c in cmds {
            if matches!(c, Command::Store { keep: k, .. } if *k == keep) {
                n += 1;
            }
        }
        n
    }

    fn delivered_cmds(cmds: &Cmds) -> usize {
        let mut n = 0;
        for c in cmds {
            if let Command::Delivered { events, .. } = c {
                n += events.len();
            }
        }
        n
    }

    /// A loaded relay (batches of `max_events`) whose first event was delivered (2xx) at `t`.
    fn acknowledged_relay(max_events: usize, c: Consent, t: u64) -> Manager<u32> {
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut m = manager(cfg, vec![relay(max_events, 1_000_000)], c);
        m.capture(env(100, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        m.request_flush();
        assert_eq!(delivers(&m.poll(t)), vec![(0, vec![100])]);
        m.delivery_done(0, Outcome::Ok, t);
        m
    }

    /// A kept keepalive hand-over that the backend acknowledged while the page runs leaves the
    /// queue, delivered, and ends a requested flush: the next delivery does not resend it.
    #[test]
    fn an_acknowledged_hand_over_leaves_the_queue() {
        let c = consent(&[]);
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        let taken = m.take_unsent(0, 30, false);
        m.handed_over(0, taken, 1, 30);
        m.request_flush();
        m.acknowledged(0, &["1".into()]);
        let cmds = m.poll(40);
        assert_eq!(delivered_cmds(&cmds), 1);
        assert!(delivers(&cmds).is_empty());
        assert_eq!(m.status(40)[0].pending, 0);
        assert_eq!(m.status(40)[0].delivered, 2);
        assert!(!m.flushing());
    }

    /// A keepalive fetch (not `sure`: the browser may refuse it after the page is gone) keeps
    /// its events even after a recent acknowledgement.
    #[test]
    fn a_hand_over_that_is_not_sure_keeps_its_events() {
        let c = consent(&[]);
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        let t = 10 + BEACON_TRUST_MS;
        let taken = m.take_unsent(0, t, false);
        assert!(taken.kept);
        m.handed_over(0, taken, 1, t);
        assert_eq!(m.status(t)[0].pending, 1);
        assert_eq!(m.status(t)[0].delivered, 1);
    }

    /// Without purging, events kept for a destination whose consent is missing are not handed
    /// over at page hide either: only the consent changes ahead of them.
    #[test]
    fn a_hand_over_without_consent_takes_only_consent_changes() {
        let granted = consent(&[Purpose::Measurement]);
        let cfg = ManagerConfig {
            purge_on_revoke: false,
            ..Default::default()
        };
        let spec = DestSpec {
            required: Purposes::of(&[Purpose::Measurement]),
            ..relay(10, 1_000_000)
        };
        let mut m = manager(cfg, vec![spec], granted);
        m.capture(env(100, granted), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        m.request_flush();
        m.poll(1);
        m.delivery_done(0, Outcome::Ok, 2);
        m.capture(env(1, granted), 3);
        let none = consent(&[]);
        m.set_consent(none, 4);
        let mut notice = env(2, none);
        notice.kind = EventKind::Consent;
        m.capture(notice, 4);
        let taken = m.take_unsent(0, 5, true);
        assert!(taken.kept);
        let ids: Vec<u32> = taken.events.iter().map(|e| e.payload).collect();
        assert_eq!(ids, vec![2], "the consent change only, not the kept event");
    }

    #[test]
    fn after_a_recent_acknowledgement_a_beacon_forgets_its_events_and_counts_them_delivered() {
        let c = consent(&[]);
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        m.capture(env(2, c), 20);
        let t = 10 + BEACON_TRUST_MS;
        let taken = m.take_unsent(0, t, true);
        assert_eq!(taken.events.len(), 2);
        assert_eq!(m.status(t)[0].pending, 0);
        m.handed_over(0, taken, 2, t);
        let cmds = m.poll(t);
        assert_eq!(stores(&cmds, false), 2);
        assert_eq!(delivered_cmds(&cmds), 2);
        assert_eq!(m.status(t)[0].delivered, 3);
        assert_eq!(m.next_wake(), None);
    }

    #[test]
    fn a_refused_beacon_puts_its_events_back_after_the_in_flight_ones_in_order() {
        let c = consent(&[]);
        let mut m = acknowledged_relay(2, c, 1);
        m.capture(env(1, c), 2);
        m.capture(env(2, c), 2);
        assert_eq!(delivers(&m.poll(2)), vec![(0, vec![1, 2])]);
        m.capture(env(3, c), 3);
        m.capture(env(4, c), 3);
        let taken = m.take_unsent(0, 3, true);
        assert_eq!(taken.events.len(), 2);
        assert_eq!(
            m.status(3)[0].pending,
            2,
            "only the in-flight batch is left"
        );
        m.capture(env(5, c), 4);
        // The browser took 3 only.
        m.handed_over(0, taken, 1, 4);
        assert_eq!(m.status(4)[0].pending, 4);
        assert_eq!(m.status(4)[0].delivered, 2);
        assert_eq!(
            delivers(&m.delivery_done(0, Outcome::Ok, 5)),
            vec![(0, vec![4, 5])]
        );
    }

    #[test]
    fn without_an_answer_yet_a_beacon_keeps_its_events_pending_for_a_later_delivery() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![relay(10, 1_000_000)], c);
        m.capture(env(1, c), 0);
        m.capture(env(2, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        let taken = m.take_unsent(0, 5, true);
        assert_eq!(taken.events.len(), 2);
        m.handed_over(0, taken, 2, 5);
        let cmds = m.poll(5);
        assert_eq!(stores(&cmds, false), 0, "kept in the outbox");
        assert_eq!(delivered_cmds(&cmds), 0);
        let st = &m.status(5)[0];
        assert_eq!(
            (st.delivered, st.pending),
            (0, 2),
            "still pending, not delivered"
        );
        // A second hide (visibilitychange, then pagehide) does not hand them over again.
        assert!(m.take_unsent(0, 6, true).events.is_empty());
        // A new event is; a refused one stays to be handed over next time.
        m.capture(env(3, c), 7);
        let taken = m.take_unsent(0, 7, true);
        assert_eq!(taken.events.len(), 1);
        m.handed_over(0, taken, 0, 7);
        assert_eq!(m.take_unsent(0, 8, true).events.len(), 1);
        // The page lives on: its next delivery sends them all, in order, and then counts and
        // forgets them.
        m.request_flush();
        assert_eq!(delivers(&m.poll(9)), vec![(0, vec![1, 2, 3])]);
        let cmds = m.delivery_done(0, Outcome::Ok, 10);
        assert_eq!(stores(&cmds, false), 3);
        assert_eq!(m.status(10)[0].delivered, 3);
        // Once acknowledged, the next hide takes them out of the queue.
        m.capture(env(4, c), 11);
        m.capture(env(5, c), 11);
        let t = 10 + BEACON_TRUST_MS;
        let taken = m.take_unsent(0, t, true);
        assert_eq!(taken.events.len(), 2, "trusted now: taken out of the queue");
        m.handed_over(0, taken, 2, t);
        assert_eq!(m.status(t)[0].pending, 0);
    }

    #[test]
    fn an_old_acknowledgement_is_not_trusted_and_a_failure_or_offline_hands_nothing_over() {
        let c = consent(&[]);
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        let late = 11 + BEACON_TRUST_MS;
        let taken = m.take_unsent(0, late, true);
        assert_eq!(taken.events.len(), 1);
        m.handed_over(0, taken, 1, late);
        let cmds = m.poll(late);
        assert_eq!(stores(&cmds, false), 0, "too old an answer: kept");
        assert_eq!(m.status(late)[0].pending, 1);
        assert_eq!(m.status(late)[0].delivered, 1);

        // A failed delivery: nothing is handed over, whatever came before.
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        m.request_flush();
        assert_eq!(delivers(&m.poll(20)), vec![(0, vec![1])]);
        m.delivery_done(0, Outcome::Err(DeliveryError::http(503, None)), 21);
        m.capture(env(2, c), 22);
        assert!(m.take_unsent(0, 22, true).events.is_empty());
        assert_eq!(m.status(22)[0].pending, 2);
        // A success again restores the trust.
        assert_eq!(delivers(&m.poll(100_000)), vec![(0, vec![1, 2])]);
        m.delivery_done(0, Outcome::Ok, 100_001);
        m.capture(env(3, c), 100_002);
        assert_eq!(m.take_unsent(0, 100_002, true).events.len(), 1);

        // Offline: nothing, even right after a success.
        let mut m = acknowledged_relay(10, c, 10);
        m.capture(env(1, c), 20);
        m.set_online(false);
        assert!(m.take_unsent(0, 20, true).events.is_empty());
        assert_eq!(m.status(20)[0].pending, 1);
        m.set_online(true);
        assert_eq!(m.take_unsent(0, 20, true).events.len(), 1);
    }

    #[test]
    fn flush_ends_when_its_events_wait_for_a_retry_an_open_circuit_or_the_network() {
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                max_retries: 10,
                base_delay_ms: 5000,
                max_delay_ms: 5000,
                jitter: false,
                ..Default::default()
            },
            breaker: BreakerConfig {
                failure_threshold: 2,
                recovery_timeout_ms: 60_000,
                half_open_successes: 1,
            },
            ..Default::default()
        };
        let c = consent(&[]);
        let fail = || Outcome::Err(DeliveryError::http(503, None));
        let mut m = manager(cfg, vec![relay(10, 1_000_000)], c);
        m.capture(env(1, c), 0);
        m.poll(0);
        m.load_done(0, Ok(()), 0);
        // A flush sends at once and waits for the answer.
        m.request_flush();
        assert_eq!(delivers(&m.poll(0)), vec![(0, vec![1])]);
        assert!(m.flushing());
        m.delivery_done(0, fail(), 1);
        assert!(!m.flushing(), "failed: queued for retry");
        // During the backoff: a flush sends nothing and is over at once.
        m.capture(env(2, c), 2);
        m.request_flush();
        assert!(m.flushing());
        assert!(delivers(&m.poll(2)).is_empty());
        assert!(!m.flushing());
        // The retry goes when due, with the later event.
        assert_eq!(m.next_wake(), Some(5001));
        assert_eq!(delivers(&m.poll(5001)), vec![(0, vec![1, 2])]);
        m.delivery_done(0, fail(), 5002);
        // Two failures: the circuit is open until 65002, past the retry backoff.
        m.request_flush();
        assert!(delivers(&m.poll(20_000)).is_empty());
        assert!(!m.flushing(), "open circuit: queued for the trial");
        assert_eq!(delivers(&m.poll(65_002)), vec![(0, vec![1, 2])]);
        m.delivery_done(0, Outcome::Ok, 65_003);
        // Offline: nothing can be attempted, a flush is over at once; online, they go.
        m.set_online(false);
        m.capture(env(3, c), 65_004);
        m.request_flush();
        assert!(delivers(&m.poll(65_004)).is_empty());
        assert!(!m.flushing());
        assert_eq!(m.status(65_004)[0].pending, 1);
        m.set_online(true);
        m.request_flush();
        assert_eq!(delivers(&m.poll(65_005)), vec![(0, vec![3])]);
        assert!(m.flushing());
        m.delivery_done(0, Outcome::Ok, 65_006);
        assert!(!m.flushing());
    }

    #[test]
    fn replay_delivers_once_and_reports_results() {
        let c = consent(&[]);
        let mut m = manager(ManagerConfig::default(), vec![spec("a", &[])], c);
        let t = m.replay(0, vec![(env(1, c), earlier(1)), (env(2, c), earlier(2))], 0);
        let cmds = m.poll(0);
        assert_eq!(loads(&cmds), vec![0]);
        m.load_done(0, Ok(()), 0);
        let cmds = m.delivery_done(0, Outcome::Ok, 1);
        assert_eq!(delivers(&cmds), vec![(0, vec![2])]);
        let cmds = m.delivery_done(0, Outcome::Err(DeliveryError::http(503, None)), 2);
        assert_eq!(dead(&cmds), vec![(0, 2)], "a replay gets one attempt");
        let done = cmds.iter().find_map(|c| match c {
            Command::ReplayDone {
                ticket,
                retried,
                succeeded,
                failed,
            } => Some((*ticket, *retried, *succeeded, *failed)),
            _ => None,
        });
        assert_eq!(done, Some((t, 2, 1, 1)));
    }

    /// A replay that fails puts back the same dead letter (its id, its first failure, its
    /// attempts added up), and `deadLettered` still counts the event once; `failed` counts the
    /// replay's failed attempt.
    #[test]
    fn failed_replay_puts_back_the_same_dead_letter() {
        let c = consent(&[]);
        let cfg = ManagerConfig {
            retry: RetryPolicy {
                max_retries: 2,
                jitter: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("a", &[])], c);
        m.capture(env(1, c), 10);
        m.poll(10);
        m.load_done(0, Ok(()), 10);
        let err = || Outcome::Err(DeliveryError::http(503, None));
        let mut cmds = m.delivery_done(0, err(), 20);
        let mut t = 20;
        for _ in 0..2 {
            t = m.next_wake().unwrap();
            assert_eq!(delivers(&m.poll(t)), vec![(0, vec![1])]);
            cmds = m.delivery_done(0, err(), t);
        }
        let entry = |cmds: &Cmds| {
            cmds.iter().find_map(|c| match c {
                Command::DeadLetter {
                    id,
                    attempts,
                    first_failed_at,
                    last_failed_at,
                    ..
                } => Some((id.clone(), *attempts, *first_failed_at, *last_failed_at)),
                _ => None,
            })
        };
        assert_eq!(entry(&cmds), Some((None, 3, 20, t)));
        assert_eq!(m.status(t)[0].dead_lettered, 1);
        let history = Earlier {
            id: "dl".into(),
            attempts: 3,
            first_failed_at: 20,
        };
        m.replay(0, vec![(env(1, c), history)], t + 1);
        assert_eq!(delivers(&m.poll(t + 1)), vec![(0, vec![1])]);
        let cmds = m.delivery_done(0, err(), t + 2);
        assert_eq!(entry(&cmds), Some((Some("dl".into()), 4, 20, t + 2)));
        let s = &m.status(t + 2)[0];
        assert_eq!((s.dead_lettered, s.failed), (1, 4));
    }

    /// A replay whose destination fails to load goes back as the same dead letter too (no
    /// delivery was attempted: its attempts stay).
    #[test]
    fn replay_failing_to_load_puts_back_the_same_dead_letter() {
        let c = consent(&[]);
        let cfg = ManagerConfig {
            load_max_retries: 0,
            ..Default::default()
        };
        let mut m = manager(cfg, vec![spec("a", &[])], c);
        m.replay(0, vec![(env(1, c), earlier(1))], 5);
        assert_eq!(loads(&m.poll(5)), vec![0]);
        let cmds = m.load_done(0, Err(DeliveryError::new(ErrorKind::ScriptLoad, "404")), 6);
        let put_back = cmds.iter().find_map(|c| match c {
            Command::DeadLetter {
                id,
                attempts,
                first_failed_at,
                ..
            } => Some((id.as_deref(), *attempts, *first_failed_at)),
            _ => None,
        });
        assert_eq!(put_back, Some((Some("dl1"), 3, 1)));
        assert_eq!(
            m.status(6)[0].dead_lettered,
            0,
            "dead-lettered on an earlier page"
        );
    }

    /// Property: over many generated runs of events, consent changes and delivery results, no
    /// event ever reaches a destination whose required consent was missing at capture time,
    /// and no event captured before a revocation reaches that destination after it.
    #[test]
    fn property_no_event_reaches_a_destination_without_consent_at_capture() {
        let purposes = Purpose::ALL;
        for seed in 1..300u64 {
            let mut rng = SeededRng::new(seed);
            let n_dest = 1 + (rng.next_u32() % 4) as usize;
            let specs: Vec<DestSpec> = (0..n_dest)
                .map(|i| {
                    let req: Vec<Purpose> = purposes
                        .iter()
                        .copied()
                        .filter(|_| rng.next_u32() % 3 == 0)
                        .collect();
                    spec(&i.to_string(), &req)
                })
                .collect();
            let mut c = consent(&[]);
            let mut m = manager(ManagerConfig::default(), specs.clone(), c);
            let mut stamps: Vec<Purposes> = vec![Purposes::NONE];
            // Per destination: the seq below which events are forbidden after a revocation.
            let mut revoked_before = vec![0u64; n_dest];
            let mut now = 0;
            let mut cmds: Cmds = m.start(0);
            for step in 0..200u64 {
                for cmd in cmds.drain(..) {
                    match cmd {
                        Command::Deliver { dest, events } => {
                            for e in &events {
                                assert!(
                                    e.consent.covers(specs[dest].required),
                                    "seed {seed}: event {} reached {dest} without consent",
                                    e.payload
                                );
                                if e.kind != EventKind::Consent {
                                    assert!(
                                        u64::from(e.payload) >= revoked_before[dest],
                                        "seed {seed}: event {} reached {dest} after revocation",
                                        e.payload
                                    );
                                }
                            }
                        }
                        Command::Load { .. } => {}
                        _ => {}
                    }
                }
                now += 1 + u64::from(rng.next_u32() % 2000);
                let seq = step + 1;
                match rng.next_u32() % 6 {
                    0 => {
                        let p = purposes[(rng.next_u32() % 5) as usize];
                        let on = rng.next_u32() % 2 == 0;
                        let new = c.merged(&[(p, on)]);
                        for (i, s) in specs.iter().enumerate() {
                            if c.allows(s.required) && !new.allows(s.required) {
                                revoked_before[i] = seq;
                            }
                        }
                        c = new;
                        m.set_consent(c, now);
                        cmds = m.poll(now);
                    }
                    1 | 2 => {
                        stamps.push(c.granted());
                        m.capture(env(seq, c), now);
                        cmds = m.poll(now);
                    }
                    3 => {
                        let d = (rng.next_u32() as usize) % n_dest;
                        cmds = m.load_done(d, Ok(()), now);
                    }
                    4 => {
                        let d = (rng.next_u32() as usize) % n_dest;
                        let outcome = if rng.next_u32() % 3 == 0 {
                            Outcome::Err(DeliveryError::http(503, None))
                        } else {
                            Outcome::Ok
                        };
                        cmds = m.delivery_done(d, outcome, now);
                    }
                    _ => cmds = m.poll(now),
                }
            }
        }
    }
}
