//! The browser driver: runs the manager's commands (loads, deliveries, dead letters, events to
//! listeners), owns the one wake-up timer, and carries the capture pipeline (source middleware,
//! then routing) as a microtask after each `track()`.
//!
//! No `RefCell` borrow is held while page code runs: commands are taken out of the manager
//! first, then executed, so a listener or destination may call back into the API.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::dest::{adopt, timed, Destination, LoadEnv};
use super::js::{get, set};
use super::platform::{error_message, is_online, now, ConsoleLog};
use super::results::{dead_letter_object, error_object, to_js, RetryResult};
use super::timers::after;
use crate::consent::{Consent, Purposes};
use crate::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::error::{DeliveryError, ErrorKind};
use crate::event::{Envelope, EventKind};
use crate::manager::{Command, Manager, Outcome};
use crate::ports::Log;
use gloo_timers::callback::Timeout;
use wasm_bindgen_futures::{spawn_local, JsFuture};

/// What a waiting promise waits for.
enum Wait {
    /// The current flush to settle.
    Flush,
    /// No destination loading.
    Loads,
    /// No durable destination loading.
    DurableLoads,
    /// This destination not loading (`retryDestination`).
    Load(usize),
}

/// An event or a `flush()` waiting for the capture pipeline, in order.
pub enum Pending {
    /// A captured event.
    Event {
        /// The event object.
        payload: JsValue,
        /// Its type.
        kind: EventKind,
        /// Consent at capture.
        consent: Purposes,
        /// Its messageId.
        message_id: Rc<str>,
        /// Its JSON (made again after source middleware, which may change the event).
        json: Rc<str>,
        /// How many consent changes were made before it (see [`Engine::consent_gen`]).
        gen: u32,
    },
    /// A `flush()` call: everything queued before it is routed first; `resolve` settles its
    /// promise.
    Flush(Function),
}

/// A `retryDeadLetters` call waiting for its replays: the tickets still open, the counts so far
/// (retried, succeeded, failed) and its promise's `resolve`.
struct ReplayWaiter {
    tickets: Vec<u32>,
    counts: [u32; 3],
    resolve: Function,
}

impl ReplayWaiter {
    /// Resolves the call's promise with `{ retried, succeeded, failed }`.
    fn resolve(&self) {
        let [retried, succeeded, failed] = self.counts;
        let result = RetryResult {
            retried,
            succeeded,
            failed,
        };
        // `resolve` is a promise's own resolve function: it does not throw.
        let _ = self.resolve.call1(&JsValue::UNDEFINED, &to_js(&result));
    }
}

/// What the source middleware chain made of an event.
pub enum Chain {
    /// The event to route (the one captured, or one a middleware returned).
    Event(JsValue),
    /// A middleware returned null: the event goes nowhere.
    Dropped,
    /// A middleware threw or rejected (the error; a string when the chain timed out): the
    /// event is dropped.
    Failed(JsValue),
}

/// Whether `v` is a promise or another object with a `then` method (not when reading `then`
/// throws).
fn thenable(v: &JsValue) -> bool {
    v.is_object() && get(v, "then").is_function()
}

/// Runs the source middleware `fns` on `event`, from `fns[from]` on, in order: each gets the
/// event and returns it, a changed event, undefined (unchanged) or null (drop it). Stops at the
/// first that returns a promise or thenable: `Err` then holds that promise, the event it was
/// given and where the chain goes on (see [`run_middleware_async`]).
fn run_middleware(
    fns: &[Function],
    from: usize,
    mut event: JsValue,
) -> Result<Chain, (Promise, JsValue, usize)> {
    for (i, f) in fns.iter().enumerate().skip(from) {
        let v = match f.call1(&JsValue::NULL, &event) {
            Ok(v) => v,
            Err(e) => return Ok(Chain::Failed(e)),
        };
        if thenable(&v) {
            return Err((adopt(&v), event, i + 1));
        }
        if v.is_null() {
            return Ok(Chain::Dropped);
        }
        if !v.is_undefined() {
            event = v;
        }
    }
    Ok(Chain::Event(event))
}

/// The rest of a middleware chain that returned `promise` for `event`: awaits it, then runs
/// `fns[next]` on as [`run_middleware`] does, awaiting each promise a middleware returns. Once
/// `open` is false (the chain was given up: it timed out) no later middleware runs on the event.
async fn run_middleware_async(
    fns: Rc<[Function]>,
    mut promise: Promise,
    mut event: JsValue,
    mut next: usize,
    open: Rc<Cell<bool>>,
) -> Chain {
    loop {
        let v = match JsFuture::from(promise).await {
            Ok(v) => v,
            Err(e) => return Chain::Failed(e),
        };
        if !open.get() {
            return Chain::Dropped;
        }
        if v.is_null() {
            return Chain::Dropped;
        }
        if !v.is_undefined() {
            event = v;
        }
        match run_middleware(&fns, next, event) {
            Ok(done) => return done,
            Err((p, e, n)) => (promise, event, next) = (p, e, n),
        }
    }
}

/// The engine behind one `Analytics` instance.
pub struct Engine {
    /// The decision logic.
    pub mgr: RefCell<Manager<JsValue>>,
    /// Destination instances, by manager index.
    pub dests: Vec<Rc<dyn Destination>>,
    /// Destination types, by index.
    pub kinds: Vec<String>,
    /// The dead-letter queue.
    pub dlq: RefCell<DeadLetterQueue>,
    /// The console.
    pub log: Rc<ConsoleLog>,
    /// `nonce` and `loading.timeoutMs` for loads.
    pub nonce: Option<Rc<str>>,
    /// `loading.timeoutMs` (also the limit for one delivery).
    pub timeout_ms: u64,
    /// Listeners with their event names, in the order added. Replaced, never changed in place:
    /// an emit under way keeps the list it started with.
    listeners: RefCell<Rc<[(String, Function)]>>,
    /// Source middleware, in the order added; replaced, never changed in place, as listeners.
    middleware: RefCell<Rc<[Function]>>,
    pending: RefCell<Vec<Pending>>,
    /// The rest of the batch being drained, reversed.
    rest: RefCell<Vec<Pending>>,
    /// Whether the capture pipeline runs (its pending continuation keeps the engine alive).
    draining: Cell<bool>,
    /// The event whose source middleware is running: type, consent and generation.
    current: RefCell<Option<(EventKind, Purposes, u32)>>,
    /// Consent changes made so far (the generation events are captured in).
    gen: Cell<u32>,
    /// The purposes each consent change revoked, by generation, while events captured before
    /// it may still wait in the pipeline.
    revoked: RefCell<Vec<(u32, Purposes)>>,
    /// Consent changes not applied to the manager yet, with their generations, in order.
    consents: RefCell<Vec<(u32, Consent)>>,
    /// The wake-up timer and when it fires.
    timer: RefCell<Option<(Timeout, u64)>>,
    /// `resolve`s waiting for the flush to settle or for loads to end (see [`Wait`]).
    waiters: RefCell<Vec<(Wait, Function)>>,
    replay_waiters: RefCell<Vec<ReplayWaiter>>,
    seq: Cell<u64>,
}

impl Engine {
    /// An engine over a manager and its destination instances.
    pub fn new(
        mgr: Manager<JsValue>,
        dests: Vec<Rc<dyn Destination>>,
        kinds: Vec<String>,
        dlq: DeadLetterQueue,
        log: Rc<ConsoleLog>,
        nonce: Option<Rc<str>>,
        timeout_ms: u64,
    ) -> Rc<Engine> {
        Rc::new(Engine {
            mgr: RefCell::new(mgr),
            dests,
            kinds,
            dlq: RefCell::new(dlq),
            log,
            nonce,
            timeout_ms,
            listeners: RefCell::new(Rc::new([])),
            middleware: RefCell::new(Rc::new([])),
            pending: RefCell::new(Vec::new()),
            rest: RefCell::new(Vec::new()),
            draining: Cell::new(false),
            current: RefCell::new(None),
            gen: Cell::new(0),
            revoked: RefCell::new(Vec::new()),
            consents: RefCell::new(Vec::new()),
            timer: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
            replay_waiters: RefCell::new(Vec::new()),
            seq: Cell::new(0),
        })
    }

    /// The id of destination `i`.
    pub fn id(&self, i: usize) -> String {
        self.mgr.borrow().spec(i).id.clone()
    }

    /// Logs the debug line `what` followed by destination `i`'s id.
    fn debug_dest(&self, what: &str, i: usize) {
        if self.log.debug {
            self.log.debug(&[what, &self.id(i)].concat());
        }
    }

    /// `{ destination: <id of destination i> }`, the start of the objects listeners get.
    fn dest_object(&self, i: usize) -> Object {
        let o = Object::new();
        set(&o, "destination", &JsValue::from_str(&self.id(i)));
        o
    }

    /// Adds a listener for `name`.
    pub fn on(&self, name: String, cb: Function) {
        let mut ls = self.listeners.borrow_mut();
        *ls = ls.iter().cloned().chain([(name, cb)]).collect();
    }

    /// Removes every listener `cb` added for `name` (by identity).
    pub fn off(&self, name: &str, cb: &JsValue) {
        let mut ls = self.listeners.borrow_mut();
        *ls = ls
            .iter()
            .filter(|(n, f)| n != name || JsValue::as_ref(f) != cb)
            .cloned()
            .collect();
    }

    /// Adds a source middleware.
    pub fn add_middleware(&self, f: Function) {
        let mut m = self.middleware.borrow_mut();
        *m = m.iter().cloned().chain([f]).collect();
    }

    /// Calls the listeners of `name` with `payload` in the order added: those there when the
    /// emit starts (one added meanwhile waits for the next). A throwing listener is logged.
    pub fn emit(&self, name: &str, payload: &JsValue) {
        let listeners = self.listeners.borrow().clone();
        let thrown: Vec<JsValue> = listeners
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, f)| f.call1(&JsValue::NULL, payload).err())
            .collect();
        for e in thrown {
            self.log
                .warn(&["a '", name, "' listener threw: ", &error_message(&e)].concat());
        }
    }

    fn has_listener(&self, name: &str) -> bool {
        self.listeners.borrow().iter().any(|(n, _)| n == name)
    }

    /// How many consent changes were made: the generation an event captured now belongs to.
    pub fn consent_gen(&self) -> u32 {
        self.gen.get()
    }

    /// Records a consent change (from `before` to `c`). It reaches the manager in order with
    /// the events around it, and in a microtask at the latest, so a source middleware that is
    /// still running never holds it back. An event captured before a revocation is then not
    /// routed to the destinations it revoked, whenever it leaves the pipeline (as the purge
    /// drops what they hold; with the purge off it is kept for them, see [`Manager::routes`]).
    pub fn set_consent(self: &Rc<Self>, before: Consent, c: Consent) {
        let g = self.gen.get() + 1;
        self.gen.set(g);
        let lost = before.granted().without(c.granted());
        if lost != Purposes::NONE {
            self.revoked.borrow_mut().push((g, lost));
        }
        self.consents.borrow_mut().push((g, c));
        let me = self.clone();
        spawn_local(async move {
            me.apply_consents(u32::MAX);
            me.poll();
        });
    }

    /// Applies the recorded consent changes of generations up to `upto`, in order.
    fn apply_consents(&self, upto: u32) {
        loop {
            let c = {
                let mut q = self.consents.borrow_mut();
                match q.first() {
                    Some((g, c)) if *g <= upto => {
                        let c = *c;
                        q.remove(0);
                        c
                    }
                    _ => return,
                }
            };
            self.mgr.borrow_mut().set_consent(c, now());
            // Not while the manager is borrowed: a vendor's function is page code.
            for d in &self.dests {
                d.consent_changed(c.granted());
            }
        }
    }

    /// Queues an event or a flush for the capture pipeline, which runs in a microtask.
    pub fn enqueue(self: &Rc<Self>, p: Pending) {
        self.pending.borrow_mut().push(p);
        if !self.draining.replace(true) {
            let me = self.clone();
            spawn_local(async move { me.drain(None) });
        }
    }

    /// The consent an event of generation `gen` captured under `consent` is routed by: without
    /// the purposes revoked since (when revoking purges).
    fn routing(&self, mut consent: Purposes, gen: u32) -> Purposes {
        let revoked = self.revoked.borrow();
        // Almost always empty: no manager borrow for an event on the usual path.
        if !revoked.is_empty() && self.mgr.borrow().purges() {
            for &(g, lost) in revoked.iter() {
                if g > gen {
                    consent = consent.without(lost);
                }
            }
        }
        consent
    }

    /// The next queued item, in order (what is queued meanwhile comes after the current batch).
    fn next_pending(&self) -> Option<Pending> {
        let mut rest = self.rest.borrow_mut();
        if rest.is_empty() {
            *rest = std::mem::take(&mut *self.pending.borrow_mut());
            rest.reverse();
        }
        rest.pop()
    }

    /// Runs the capture pipeline until it is empty or a middleware returned a promise (then it
    /// runs again with the chain's result `r` once that settles; `r` is `None` when the
    /// pipeline starts).
    fn drain(self: &Rc<Self>, r: Option<Chain>) {
        if let Some(r) = r {
            if let Some((kind, consent, gen)) = self.current.take() {
                self.after_middleware(r, kind, self.routing(consent, gen));
            }
        }
        while let Some(p) = self.next_pending() {
            match p {
                Pending::Flush(resolve) => {
                    self.mgr.borrow_mut().request_flush();
                    self.waiters.borrow_mut().push((Wait::Flush, resolve));
                    self.poll();
                }
                Pending::Event {
                    payload,
                    kind,
                    consent,
                    message_id,
                    json,
                    gen,
                } => {
                    // The consent changes made before it are in force when it is routed.
                    self.apply_consents(gen);
                    // A snapshot: a middleware added while this event runs waits for the next.
                    let fns = self.middleware.borrow().clone();
                    if kind == EventKind::Consent || fns.is_empty() {
                        let consent = self.routing(consent, gen);
                        self.capture(payload, kind, consent, message_id, json);
                        continue;
                    }
                    let (promise, event, next) = match run_middleware(&fns, 0, payload) {
                        Ok(r) => {
                            self.after_middleware(r, kind, self.routing(consent, gen));
                            continue;
                        }
                        Err(pending) => pending,
                    };
                    // The rest of the chain, given up after `loading.timeoutMs` (the event is
                    // dropped, as when one throws) so a middleware that never settles does not
                    // hold every later event.
                    *self.current.borrow_mut() = Some((kind, consent, gen));
                    let open = Rc::new(Cell::new(true));
                    let (me, o) = (self.clone(), open.clone());
                    let t = after(self.timeout_ms, move || {
                        if o.replace(false) {
                            let late = "did not settle within loading.timeoutMs";
                            me.drain(Some(Chain::Failed(late.into())));
                        }
                    });
                    let me = self.clone();
                    spawn_local(async move {
                        let r = run_middleware_async(fns, promise, event, next, open.clone()).await;
                        if open.replace(false) {
                            drop(t);
                            me.drain(Some(r))
                        }
                    });
                    return;
                }
            }
        }
        // Nothing captured before the changes waits any more.
        self.revoked.borrow_mut().clear();
        self.draining.set(false);
        self.poll();
    }

    /// Routes the event the source middleware chain returned, checked like a new one; a
    /// dropped or failed one goes nowhere.
    fn after_middleware(&self, r: Chain, kind: EventKind, consent: Purposes) {
        let (why, m) = match r {
            Chain::Failed(e) => (
                "source middleware failed; event dropped: ",
                error_message(&e),
            ),
            Chain::Dropped => {
                self.log.debug("event dropped by source middleware");
                return;
            }
            Chain::Event(payload) => {
                // A changed event is validated like a new one.
                let checked = if !super::js::is_plain_object(&payload) {
                    Err("source middleware must return an event object or null".to_string())
                } else if get(&payload, "type").as_string().as_deref() != Some(kind.name()) {
                    Err("source middleware must not change the event type".to_string())
                } else {
                    match super::event::check_event(&payload, kind) {
                        Ok(id) => match super::event::check_json_value(&payload, "event") {
                            Ok(()) => match super::event::serialise(&payload) {
                                Ok(json) => Ok((id, json)),
                                Err(m) => Err(m),
                            },
                            Err(m) => Err(m),
                        },
                        Err(m) => Err(m),
                    }
                };
                match checked {
                    // The messageId is the event's own (a middleware may have set it).
                    Ok((id, json)) => {
                        return self.capture(payload, kind, consent, id.into(), json.into())
                    }
                    Err(m) => ("event from source middleware rejected: ", m),
                }
            }
        };
        let msg = [why, &m].concat();
        self.emit_error(None, &DeliveryError::new(ErrorKind::Unknown, msg));
    }

    /// Hands an event that passed the source middleware to the manager.
    fn capture(
        &self,
        payload: JsValue,
        kind: EventKind,
        consent: Purposes,
        message_id: Rc<str>,
        json: Rc<str>,
    ) {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        if self.log.debug {
            self.log.debug(
                &[
                    "capture ",
                    kind.name(),
                    " ",
                    &message_id,
                    " (",
                    &self.routes_text(kind, consent),
                    ")",
                ]
                .concat(),
            );
        }
        let env = Envelope {
            seq,
            kind,
            consent,
            message_id,
            json,
            payload,
        };
        self.mgr.borrow_mut().capture(env, now());
    }

    /// Where an event goes, for the debug line: `<id>: routed, <id>: blocked by consent`.
    fn routes_text(&self, kind: EventKind, consent: Purposes) -> String {
        let mgr = self.mgr.borrow();
        let mut out = String::new();
        for i in 0..mgr.len() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&mgr.spec(i).id);
            out.push_str(if mgr.routes(kind, consent, i) {
                ": routed"
            } else {
                ": blocked by consent"
            });
        }
        out
    }

    fn emit_error(&self, dest: Option<usize>, e: &DeliveryError) {
        let o = match dest {
            Some(i) => self.dest_object(i),
            None => Object::new(),
        };
        set(&o, "error", &error_object(e));
        if self.has_listener("error") {
            self.emit("error", &o);
        } else if dest.is_none() {
            self.log.warn(&e.message);
        }
        self.log.debug(&["error: ", &e.message].concat());
    }

    /// Asks the manager what to do now and does it.
    pub fn poll(self: &Rc<Self>) {
        self.take_acks();
        let cmds = self.mgr.borrow_mut().poll(now());
        self.run(cmds);
    }

    /// Tells the manager which events of keepalive hand-overs the backend acknowledged, so the
    /// next delivery does not send them again (the commands go out with the next ones).
    fn take_acks(&self) {
        for (i, d) in self.dests.iter().enumerate() {
            let ids = d.take_acked();
            if !ids.is_empty() {
                self.mgr.borrow_mut().acknowledged(i, &ids);
            }
        }
    }

    /// Carries out manager commands, then settles the promises whose wait is over (flush,
    /// loads) and re-arms the timer.
    pub fn run(self: &Rc<Self>, cmds: Vec<Command<JsValue>>) {
        self.dlq.borrow_mut().hold();
        for c in cmds {
            self.exec(c);
        }
        self.dlq.borrow_mut().release();
        {
            // Each `resolve` settles a promise of ours with undefined: no page code runs now,
            // so it is called with the borrows held.
            let mgr = self.mgr.borrow();
            let mut ws = self.waiters.borrow_mut();
            for (w, f) in std::mem::take(&mut *ws) {
                let waiting = match w {
                    Wait::Flush => mgr.flushing(),
                    Wait::Loads => mgr.any_loading(),
                    Wait::DurableLoads => mgr.durable_loading(),
                    Wait::Load(i) => mgr.loading(i),
                };
                if waiting {
                    ws.push((w, f));
                } else {
                    let _ = f.call1(&JsValue::NULL, &JsValue::UNDEFINED);
                }
            }
        }
        self.arm_timer();
    }

    /// Starts a load or delivery in the background (from a microtask, after this run); a
    /// delivery is raced against `timeout_ms` (a JavaScript destination's load races each of
    /// its hooks against it). Tells the manager the outcome.
    fn start(self: &Rc<Self>, dest: usize, job: Job) {
        let me = self.clone();
        spawn_local(async move {
            let d = me.dests[dest].clone();
            match job {
                // Consent may have been revoked (and granted again) since it was asked for.
                Job::Load(_, attempt) if !me.mgr.borrow().load_wanted(dest, attempt) => {}
                Job::Load(env, attempt) => d.load(
                    env,
                    Box::new(move |r| {
                        let cmds = me.mgr.borrow_mut().load_ended(dest, attempt, r, now());
                        me.run(cmds);
                    }),
                ),
                // Consent may have been revoked since it was asked for (by a listener of the
                // delivery before it, say): then it does not start.
                Job::Deliver(events)
                    if !me.mgr.borrow().allowed(dest)
                        && events.iter().any(|e| e.kind != EventKind::Consent) =>
                {
                    let cmds = me.mgr.borrow_mut().delivery_withheld(dest, now());
                    me.run(cmds);
                }
                Job::Deliver(events) => {
                    // The relay aborts its own request at `loading.timeoutMs` (a timeout error):
                    // this later one is only a backstop, so a retry never starts beside it.
                    let slack = if d.durable() { 1000 } else { 0 };
                    let (ms, dd) = (me.timeout_ms + slack, d.clone());
                    d.deliver(
                        events,
                        timed(
                            ms,
                            "destination did not answer in time".into(),
                            Box::new(move |r| {
                                if let Err(e) = &r {
                                    dd.failed(e);
                                }
                                me.delivered(dest, r);
                            }),
                        ),
                    );
                }
            }
        });
    }

    /// A delivery to `dest` ended with `r`.
    fn delivered(self: &Rc<Self>, dest: usize, r: Result<(), DeliveryError>) {
        let outcome = match r {
            Ok(()) => Outcome::Ok,
            Err(_) if !is_online() => Outcome::Offline,
            Err(e) => Outcome::Err(e),
        };
        self.take_acks();
        let skipped = self.dests[dest].take_skipped();
        if !skipped.is_empty() {
            self.mgr.borrow_mut().skipped(dest, skipped);
        }
        let cmds = self.mgr.borrow_mut().delivery_done(dest, outcome, now());
        self.run(cmds);
    }

    fn exec(self: &Rc<Self>, c: Command<JsValue>) {
        match c {
            Command::Load { dest, attempt } => {
                self.debug_dest("loading ", dest);
                let env = LoadEnv {
                    consent: self.mgr.borrow().consent().granted(),
                    nonce: self.nonce.clone(),
                    timeout_ms: self.timeout_ms,
                };
                self.start(dest, Job::Load(env, attempt));
            }
            Command::Deliver { dest, events } => self.start(dest, Job::Deliver(events)),
            Command::RemoveScripts { dest } => {
                self.debug_dest("consent revoked for ", dest);
                self.dests[dest].revoke();
            }
            Command::Destroy { dest } => self.dests[dest].destroy(),
            Command::Delivered { dest, events } => {
                if self.log.debug {
                    self.log.debug(
                        &[
                            "delivered ",
                            &events.len().to_string(),
                            " event(s) to ",
                            &self.id(dest),
                        ]
                        .concat(),
                    );
                }
                if self.has_listener("delivered") {
                    for e in events {
                        let o = self.dest_object(dest);
                        set(&o, "messageId", &JsValue::from_str(&e.message_id));
                        set(&o, "event", &e.payload);
                        self.emit("delivered", &o);
                    }
                }
            }
            Command::Failed { dest, error } => self.emit_error(Some(dest), &error),
            Command::DeadLetter {
                dest,
                id,
                event,
                error,
                attempts,
                first_failed_at,
                last_failed_at,
            } => {
                // A failed replay goes back under its id: the same dead letter, updated.
                let entry = DeadLetter {
                    id: id.unwrap_or_else(super::platform::uuid),
                    destination: self.id(dest),
                    event_json: String::from(&*event.json),
                    kind: error.kind,
                    message: error.message,
                    status: error.status,
                    attempts,
                    first_failed_at,
                    last_failed_at,
                };
                self.log.debug(
                    &[
                        "dead-lettered ",
                        &event.message_id,
                        " for ",
                        &entry.destination,
                    ]
                    .concat(),
                );
                let obj = if self.has_listener("dead-letter") {
                    Some(dead_letter_object(&entry))
                } else {
                    None
                };
                self.dlq.borrow_mut().push(entry, now());
                if let Some(o) = obj {
                    self.emit("dead-letter", &o);
                }
            }
            Command::Loaded { dest } => {
                self.debug_dest("loaded ", dest);
                self.emit("loaded", &self.dest_object(dest));
            }
            Command::Store { dest, event, keep } => self.dests[dest].store(&event, keep),
            Command::PurgeDeadLetters { dest } => {
                let id = self.id(dest);
                self.dlq.borrow_mut().clear(Some(&id));
            }
            Command::ReplayDone {
                ticket,
                retried,
                succeeded,
                failed,
            } => {
                let mut done = None;
                {
                    let mut ws = self.replay_waiters.borrow_mut();
                    // Tickets are never reused: at most one waiter holds this one, once.
                    for p in 0..ws.len() {
                        let w = &mut ws[p];
                        let Some(k) = w.tickets.iter().position(|t| *t == ticket) else {
                            continue;
                        };
                        w.tickets.swap_remove(k);
                        w.counts[0] += retried;
                        w.counts[1] += succeeded;
                        w.counts[2] += failed;
                        if w.tickets.is_empty() {
                            done = Some(ws.remove(p));
                        }
                        break;
                    }
                }
                if let Some(w) = done {
                    w.resolve();
                }
            }
            Command::Warn { message } => self.log.warn(&message),
        }
    }

    /// Calls `resolve` once destination `i` is not loading (its load and the retries of it
    /// ended), checked after each run of commands.
    pub fn wait_load(self: &Rc<Self>, i: usize, resolve: Function) {
        self.waiters.borrow_mut().push((Wait::Load(i), resolve));
        self.poll();
    }

    /// Calls `resolve` once no destination is loading (`durable`: no durable one), checked
    /// after each run of commands (`cmds`, which are run now).
    pub fn wait_loads(
        self: &Rc<Self>,
        durable: bool,
        resolve: Function,
        cmds: Vec<Command<JsValue>>,
    ) {
        let w = if durable {
            Wait::DurableLoads
        } else {
            Wait::Loads
        };
        self.waiters.borrow_mut().push((w, resolve));
        self.run(cmds);
    }

    /// `testDestination`: a promise of whether destination `i` can reach its backend (asked
    /// from a microtask; no when it does not answer within `loading.timeoutMs`). One without a
    /// test of its own (a vendor tag, `script`) can when it is loaded (see `Manager::loaded`).
    pub fn test(&self, i: usize) -> Promise {
        let (d, ms) = (self.dests[i].clone(), self.timeout_ms);
        if !d.has_test() {
            return Promise::resolve(&JsValue::from_bool(self.mgr.borrow().loaded(i)));
        }
        let (p, resolve, _) = deferred();
        spawn_local(async move {
            d.test(timed(
                ms,
                String::new(),
                Box::new(move |r| {
                    let _ = resolve.call1(&JsValue::NULL, &JsValue::from_bool(r.is_ok()));
                }),
            ))
        });
        p
    }

    /// Registers `resolve` for the replays of `tickets`; it gets `{ retried, succeeded, failed }`
    /// summed over them, starting from `counts`.
    pub fn wait_replay(&self, tickets: Vec<u32>, counts: [u32; 3], resolve: Function) {
        let w = ReplayWaiter {
            tickets,
            counts,
            resolve,
        };
        if w.tickets.is_empty() {
            w.resolve();
        } else {
            self.replay_waiters.borrow_mut().push(w);
        }
    }

    /// Whether the capture pipeline still holds events.
    pub fn capture_pending(&self) -> bool {
        self.draining.get()
    }

    fn arm_timer(self: &Rc<Self>) {
        let next = self.mgr.borrow().next_wake();
        let mut timer = self.timer.borrow_mut();
        if timer.as_ref().map(|(_, at)| *at) == next {
            return;
        }
        // Dropping the timer it replaces clears that one.
        *timer = next.map(|at| {
            // Weak: a pending timer does not keep the engine alive.
            let me = Rc::downgrade(self);
            let t = after(at.saturating_sub(now()), move || {
                if let Some(me) = me.upgrade() {
                    // Taken out before it is dropped: no borrow is held while it runs.
                    let fired = me.timer.borrow_mut().take();
                    drop(fired);
                    me.poll();
                }
            });
            (t, at)
        });
    }

    /// The browser came back online or went offline.
    pub fn set_online(self: &Rc<Self>, online: bool) {
        self.mgr.borrow_mut().set_online(online);
        if online {
            self.poll();
        }
    }

    /// The page is being hidden or unloaded: hand batching destinations' unsent events to the
    /// browser (`sendBeacon`), synchronously, as the manager decides (nothing while offline or
    /// after a failed delivery; see [`crate::manager::BEACON_TRUST_MS`]).
    pub fn page_hidden(self: &Rc<Self>) {
        // As the browser says now: an `offline` event may still be on its way.
        self.mgr.borrow_mut().set_online(is_online());
        let t = now();
        for (i, d) in self.dests.iter().enumerate() {
            if d.batch().is_none() {
                continue;
            }
            let unsent = self.mgr.borrow_mut().take_unsent(i, t, d.sure_hand_over());
            if unsent.events.is_empty() {
                continue;
            }
            let taken = d.beacon(&unsent.events);
            self.mgr.borrow_mut().handed_over(i, unsent, taken, t);
        }
        self.poll();
    }
}

/// A new pending promise with its `resolve` and `reject` functions.
pub fn deferred() -> (Promise, Function, Function) {
    let mut settle = None;
    let p = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    // The executor runs within `Promise::new`, so both are there; were they not, calling the
    // stand-in (undefined) would be an `Err`, never a throw.
    let (resolve, reject) = settle.unwrap_or_else(|| {
        let none: Function = JsValue::UNDEFINED.unchecked_into();
        (none.clone(), none)
    });
    (p, resolve, reject)
}

/// What a started job does.
enum Job {
    /// A load, and which attempt it is (see `Command::Load`).
    Load(LoadEnv, u32),
    Deliver(Vec<super::dest::Event>),
}
