//! The browser side of a destination: what the engine calls to load it, deliver to it, tell it
//! about revocation and tear it down. Built-in types and JavaScript destinations implement it.

use std::rc::Rc;

use std::cell::{Cell, RefCell};

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::inject::{parse_descriptor, remove_all, remove_revoked, Injecting};
use super::js::set;
use super::platform::error_message;
use super::timers::after;
use crate::consent::Purposes;
use crate::error::{DeliveryError, ErrorKind};
use crate::event::{Envelope, EventKind};
use crate::manager::BatchLimits;
use crate::script::ScriptDescriptor;
use wasm_bindgen_futures::{spawn_local, JsFuture};

/// What to do once a load or delivery ends, with its outcome.
pub type Done = Box<dyn FnOnce(Result<(), DeliveryError>)>;

/// An event as the browser side holds it.
pub type Event = Rc<Envelope<JsValue>>;

/// What creating a built-in destination may need besides its config entry.
pub struct CreateEnv {
    /// `storagePrefix`.
    pub prefix: String,
    /// localStorage, or the memory stand-in when it is unavailable (probed once at load).
    pub storage: Rc<dyn crate::ports::Storage>,
    /// The console, honouring `debug`.
    pub log: Rc<super::platform::ConsoleLog>,
    /// `<n>:` for the n-th client of the page: the start of every owner of a script this
    /// client injects (see [`CreateEnv::owner`]); alone, the owner of its remote scripts.
    pub instance: String,
    /// `loading.timeoutMs`: how long a delivery may take (a relay aborts its request then).
    pub timeout_ms: u64,
}

impl CreateEnv {
    /// Who injects the scripts of destination `id` of this client, for the injector's count of
    /// each script's users (two clients of a page may have destinations with the same id).
    pub fn owner(&self, id: &str) -> Rc<str> {
        [&self.instance, id].concat().into()
    }
}

/// What a load needs to know.
#[derive(Clone)]
pub struct LoadEnv {
    /// The consent in force when the load starts.
    pub consent: Purposes,
    /// `config.nonce`.
    pub nonce: Option<Rc<str>>,
    /// `loading.timeoutMs`.
    pub timeout_ms: u64,
}

/// An undelivered event restored from persistent storage.
pub struct Restored {
    /// Its messageId.
    pub message_id: String,
    /// Its JSON.
    pub json: String,
    /// The event object parsed from it.
    pub payload: JsValue,
}

/// A destination instance, as driven by the engine. Each call that waits on the browser ends by
/// calling the `done` it was given, exactly once (possibly before it returns).
pub trait Destination {
    /// Injects its scripts and initialises it.
    fn load(self: Rc<Self>, env: LoadEnv, done: Done);
    /// Delivers events (a batch only for batching destinations) in order.
    fn deliver(self: Rc<Self>, events: Vec<Event>, done: Done);
    /// Consent for it was revoked: remove its non-persistent scripts.
    fn revoke(&self) {}
    /// The consent in force changed to `granted`, whatever this destination's state: a vendor
    /// tag whose stub already holds its init calls tells the vendor at once, so a script still
    /// in flight (it runs even once its element is removed) or loaded later learns it.
    fn consent_changed(&self, _granted: Purposes) {}
    /// `unloadDestination`: destroy the instance and remove its scripts.
    fn destroy(&self) {}
    /// `reset()`: the visitor's identity was cleared; a vendor tag that keeps its own (PostHog's
    /// distinct id, GA4's user_id) forgets it too.
    fn reset(&self) {}
    /// A delivery to it failed with `error`: a JavaScript destination tells its `onError` hook
    /// of a timeout (it has told it of its own failures already).
    fn failed(&self, _error: &DeliveryError) {}
    /// `testDestination`: whether it can reach its backend (`done` with `Ok` when it can).
    /// Only asked of one that [`has_test`](Destination::has_test).
    fn test(self: Rc<Self>, done: Done) {
        done(Ok(()))
    }
    /// Whether it has a connection test of its own (the relay, a JavaScript destination);
    /// for one without (vendor tags, `script`), `testDestination` says whether it is loaded.
    fn has_test(&self) -> bool {
        false
    }
    /// Batching limits, for destinations that send batches.
    fn batch(&self) -> Option<BatchLimits> {
        None
    }
    /// Whether undelivered events are persisted (see `store` / `restore`).
    fn durable(&self) -> bool {
        false
    }
    /// Persists an accepted event before it is sent (`keep`), or forgets a persisted one
    /// (acknowledged, dead-lettered or purged).
    fn store(&self, _event: &Event, _keep: bool) {}
    /// Undelivered events persisted by an earlier page, to deliver first.
    fn restore(&self, done: Box<dyn FnOnce(Vec<Restored>)>) {
        done(Vec::new())
    }
    /// Hands events to the browser at page hide (`navigator.sendBeacon` or a keepalive fetch);
    /// returns how many of them, from the front, the browser took (the rest stay queued).
    fn beacon(&self, _events: &[Event]) -> usize {
        0
    }
    /// The messageIds of the last delivery's events that the destination skipped (a
    /// JavaScript destination's `onBeforeEvent` returned null).
    fn take_skipped(&self) -> Vec<Rc<str>> {
        Vec::new()
    }
    /// The events of a keepalive hand-over the backend acknowledged (2xx) since last asked.
    fn take_acked(&self) -> Vec<Rc<str>> {
        Vec::new()
    }
    /// Whether the browser taking a [`Destination::beacon`] hand-over means it will be sent
    /// (a beacon): only then may the manager forget the events at once.
    fn sure_hand_over(&self) -> bool {
        false
    }
}

/// A destination whose behaviour comes from a JavaScript object made by a registered factory.
pub struct JsDestination {
    id: String,
    /// The owner of its scripts ([`CreateEnv::owner`]).
    owner: Rc<str>,
    /// The object the factory made; a new one is made for a load after `destroy`.
    obj: RefCell<JsValue>,
    /// The registered factory and where the entry sits in the config (its errors name it).
    factory: Function,
    path: String,
    /// Whether `destroy` ended the current object (`unloadDestination`).
    destroyed: Cell<bool>,
    /// The events of the current delivery its `onBeforeEvent` skipped.
    skipped: RefCell<Vec<Rc<str>>>,
    settings: JsValue,
    scripts: std::cell::RefCell<Rc<Vec<ScriptDescriptor>>>,
    /// Bumped by `revoke` and `destroy`: a load started before stops injecting and does not
    /// initialise.
    generation: Rc<std::cell::Cell<u32>>,
    /// The state of the delivery in flight.
    flight: RefCell<Rc<Flight>>,
}

/// A delivery to a JavaScript destination, as its hooks run: the event being delivered (as the
/// hooks see it, for `onError`) and whether the delivery failed or timed out, after which no
/// further hook of it runs and `onError` is not called again.
#[derive(Default)]
struct Flight {
    event: RefCell<JsValue>,
    over: Cell<bool>,
}

impl JsDestination {
    /// Calls `factory(settings)`; an error names the config entry.
    pub fn create(
        factory: &Function,
        id: &str,
        settings: &Object,
        path: &str,
        owner: Rc<str>,
    ) -> Result<Self, String> {
        let obj = make(factory, settings, path)?;
        Ok(JsDestination {
            id: id.into(),
            owner,
            obj: RefCell::new(obj),
            factory: factory.clone(),
            path: path.into(),
            destroyed: Cell::new(false),
            skipped: Default::default(),
            settings: settings.into(),
            scripts: Default::default(),
            generation: Default::default(),
            flight: Default::default(),
        })
    }
}

/// Calls `factory(settings)` for the entry at `path`: the destination object, or an error
/// naming the entry.
fn make(factory: &Function, settings: &JsValue, path: &str) -> Result<JsValue, String> {
    let obj = match factory.call1(&JsValue::NULL, settings) {
        Ok(o) => o,
        Err(e) => return Err([path, ": destination factory threw: ", &error_message(&e)].concat()),
    };
    if !obj.is_object() {
        return Err([path, ": destination factory must return an object"].concat());
    }
    if super::js::get(&obj, "then").is_function() {
        return Err([
            path,
            ": destination factory must return the destination object synchronously, not a Promise",
        ]
        .concat());
    }
    Ok(obj)
}

impl JsDestination {
    /// The current destination object.
    fn obj(&self) -> JsValue {
        self.obj.borrow().clone()
    }
}

fn unknown(e: &JsValue) -> DeliveryError {
    DeliveryError::new(ErrorKind::Unknown, error_message(e))
}

/// The hook name for an event kind (also `type`).
fn hook(kind: EventKind) -> &'static str {
    kind.name()
}

/// The purposes as a `{ necessary: true, ... }` object.
pub fn consent_object(p: Purposes) -> Object {
    let o = Object::new();
    for purpose in crate::consent::Purpose::ALL {
        set(&o, purpose.name(), &JsValue::from_bool(p.has(purpose)));
    }
    o
}

impl JsDestination {
    /// The descriptors `scripts()` returned (`list`; none when undefined or null).
    fn descriptors(&self, list: JsValue) -> Result<Option<Vec<ScriptDescriptor>>, DeliveryError> {
        if list.is_undefined() || list.is_null() {
            return Ok(None);
        }
        let fail = |m| DeliveryError::new(ErrorKind::ScriptLoad, m);
        if !Array::is_array(&list) {
            return Err(fail("scripts() must return an array".into()));
        }
        let arr = match super::js::items(&list, "") {
            Ok(a) => a,
            Err(m) => return Err(fail(m)),
        };
        let at = [&self.id, ".scripts()"].concat();
        let mut descs = Vec::new();
        for i in 0..arr.length() {
            let d = arr.get(i);
            let path = super::js::index(&at, i);
            match parse_descriptor(&d, &path, false) {
                Ok(d) => descs.push(d),
                Err(m) => return Err(fail(m)),
            }
        }
        Ok(Some(descs))
    }
}

/// What to do with an outcome carrying a value of type `T`.
pub type Then<T> = Box<dyn FnOnce(Result<T, DeliveryError>)>;

/// `k` raced against `ms` milliseconds: the continuation returned passes its outcome on when it
/// comes first; otherwise `k` gets a `timeout` error with `message` and a later outcome is
/// ignored.
pub fn timed<T: 'static>(ms: u64, message: String, k: Then<T>) -> Then<T> {
    let slot = Rc::new(std::cell::Cell::new(Some(k)));
    let s = slot.clone();
    let t = after(ms, move || {
        if let Some(k) = s.take() {
            k(Err(DeliveryError::new(ErrorKind::Timeout, message)));
        }
    });
    Box::new(move |r| {
        if let Some(k) = slot.take() {
            drop(t);
            k(r);
        }
    })
}

/// The timeout message of a hook of a load (`initialize timed out after 300 ms`).
fn late(name: &str, ms: u64) -> String {
    [name, " timed out after ", &ms.to_string(), " ms"].concat()
}

#[wasm_bindgen]
extern "C" {
    /// `Promise.resolve(v)`, which throws only for a promise whose `constructor` getter does.
    #[wasm_bindgen(catch, js_namespace = Promise, js_name = resolve)]
    fn promise_resolve(v: &JsValue) -> Result<Promise, JsValue>;
}

/// What page code returned, as a promise: a returned promise or thenable is adopted.
pub fn adopt(v: &JsValue) -> Promise {
    promise_resolve(v).unwrap_or_else(|e| Promise::reject(&e))
}

/// `obj[name]` when it is a function (`None` when it is not, or reading it throws).
fn method(obj: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(obj, &JsValue::from_str(name))
        .ok()
        .and_then(|f| f.dyn_into().ok())
}

/// Calls `obj[name](a, b)` now and returns a promise of what it returns (a returned promise
/// or thenable adopted); `None` without such a method. A throw is a rejected promise.
fn start_hook(obj: &JsValue, name: &str, a: &JsValue, b: &JsValue) -> Option<Promise> {
    let f = method(obj, name)?;
    Some(match f.call2(obj, a, b) {
        Ok(v) => adopt(&v),
        Err(e) => Promise::reject(&e),
    })
}

/// Calls `obj[name](a, b)` and awaits what it returns: `Ok(None)` without such a method,
/// `Err` with what it threw or rejected with.
async fn call_hook(
    obj: &JsValue,
    name: &str,
    a: &JsValue,
    b: &JsValue,
) -> Result<Option<JsValue>, JsValue> {
    match start_hook(obj, name, a, b) {
        Some(p) => JsFuture::from(p).await.map(Some),
        None => Ok(None),
    }
}

/// Runs hook `name` of `obj` and calls `done` with what it resolved (undefined without the
/// method); a throw or rejection is an `unknown` failure.
fn run_hook(obj: &JsValue, name: &'static str, a: &JsValue, done: Then<JsValue>) {
    let (obj, a) = (obj.clone(), a.clone());
    spawn_local(async move {
        let r = call_hook(&obj, name, &a, &JsValue::UNDEFINED).await;
        done(r.map(Option::unwrap_or_default).map_err(|e| unknown(&e)));
    });
}

impl JsDestination {
    /// Delivers `events` in order, stopping at the first failure or once the delivery is over
    /// (timed out); `Err` holds what a hook threw or rejected with.
    async fn deliver_all(&self, events: &[Event], flight: &Rc<Flight>) -> Result<(), JsValue> {
        for ev in events {
            if flight.over.get() {
                break;
            }
            if let Err(e) = self.deliver_one(ev, flight).await {
                if let Some(told) = tell(&self.obj(), flight, &e) {
                    let _ = JsFuture::from(told).await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Delivers one event: `onBeforeEvent` gets a copy parsed from its JSON and may return a
    /// changed event, or null to skip it; then the hook of its type with `{ destination: id }`;
    /// then `onAfterEvent(event, result)`, not awaited and its failures ignored: the event is
    /// delivered whatever it does, or however long it takes.
    async fn deliver_one(&self, ev: &Event, flight: &Flight) -> Result<(), JsValue> {
        let mut payload = ev.payload.clone();
        *flight.event.borrow_mut() = payload.clone();
        if method(&self.obj(), "onBeforeEvent").is_some() {
            let copy = js_sys::JSON::parse(&ev.json)?;
            let v = call_hook(&self.obj(), "onBeforeEvent", &copy, &JsValue::UNDEFINED).await?;
            if flight.over.get() {
                return Ok(());
            }
            if v.as_ref().is_some_and(JsValue::is_null) {
                self.skipped.borrow_mut().push(ev.message_id.clone());
                return Ok(());
            }
            payload = v.filter(JsValue::is_object).unwrap_or(copy);
            *flight.event.borrow_mut() = payload.clone();
        }
        let ctx = Object::new();
        set(&ctx, "destination", &JsValue::from_str(&self.id));
        let r = call_hook(&self.obj(), hook(ev.kind), &payload, &ctx).await?;
        if !flight.over.get() {
            let r = r.unwrap_or_default();
            if let Some(p) = start_hook(&self.obj(), "onAfterEvent", &payload, &r) {
                ignore(p);
            }
        }
        Ok(())
    }
}

/// Ends the delivery of `flight` and calls `onError(error, event being delivered)` now, unless
/// it was over already: the promise of what `onError` returned, for the caller to await or
/// [`ignore`].
fn tell(obj: &JsValue, flight: &Flight, error: &JsValue) -> Option<Promise> {
    if flight.over.replace(true) {
        return None;
    }
    let event = flight.event.borrow().clone();
    start_hook(obj, "onError", error, &event)
}

/// Lets what page code returned settle in the background, whatever it settles to (a rejection
/// is handled, not reported as unhandled).
fn ignore(p: Promise) {
    spawn_local(async move {
        let _ = JsFuture::from(p).await;
    });
}

impl Destination for JsDestination {
    fn load(self: Rc<Self>, env: LoadEnv, done: Done) {
        // Loading again after `unloadDestination`: a new instance from the factory, as the
        // first load had.
        if self.destroyed.get() {
            match make(&self.factory, &self.settings, &self.path) {
                Ok(obj) => {
                    *self.obj.borrow_mut() = obj;
                    self.destroyed.set(false);
                }
                Err(m) => return done(Err(DeliveryError::new(ErrorKind::Unknown, m))),
            }
        }
        let generation = self.generation.get();
        let consent = consent_object(env.consent);
        let ms = env.timeout_ms;
        let (obj, settings) = (self.obj(), self.settings.clone());
        // Each hook of the load has `loading.timeoutMs` to settle (injection has its own).
        let k = timed(
            ms,
            late("scripts", ms),
            Box::new(move |r: Result<JsValue, DeliveryError>| {
                let descs = match r {
                    Ok(l) => self.descriptors(l),
                    Err(e) => Err(e),
                };
                let descs = match descs {
                    Ok(d) => d,
                    Err(e) => return done(Err(e)),
                };
                let list = match descs {
                    Some(d) => {
                        // Known before injecting, so a revocation during the load removes them.
                        let d = Rc::new(d);
                        *self.scripts.borrow_mut() = d.clone();
                        d
                    }
                    None => Rc::default(),
                };
                Injecting {
                    list,
                    next: 0,
                    owner: self.owner.clone(),
                    nonce: env.nonce,
                    timeout_ms: env.timeout_ms,
                    generation: self.generation.clone(),
                    started: generation,
                    done: Box::new(move |r| {
                        if r.is_ok() && self.generation.get() != generation {
                            return done(Err(super::inject::revoked()));
                        }
                        match r {
                            Ok(()) => run_hook(
                                &self.obj(),
                                "initialize",
                                &self.settings,
                                timed(ms, late("initialize", ms), Box::new(|r| done(r.map(drop)))),
                            ),
                            Err(e) => done(Err(e)),
                        }
                    }),
                }
                .run();
            }),
        );
        spawn_local(async move {
            let r = call_hook(&obj, "scripts", &settings, &consent.into()).await;
            k(r.map(Option::unwrap_or_default).map_err(|e| unknown(&e)))
        });
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>, done: Done) {
        self.skipped.borrow_mut().clear();
        let flight = Rc::new(Flight::default());
        *self.flight.borrow_mut() = flight.clone();
        spawn_local(async move {
            let r = self.deliver_all(&events, &flight).await;
            done(r.map_err(|e| unknown(&e)));
        });
    }

    fn failed(&self, error: &DeliveryError) {
        // Its own failures are `unknown`: a timeout is the engine's, told as a thrown Error of
        // kind 'timeout' would be.
        if error.kind == ErrorKind::Timeout {
            let flight = self.flight.borrow().clone();
            let e = js_sys::Error::new(&error.message);
            set(&e, "kind", &JsValue::from_str("timeout"));
            if let Some(told) = tell(&self.obj(), &flight, &e) {
                ignore(told);
            }
        }
    }

    fn revoke(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_revoked(&self.owner, &self.scripts.borrow());
    }

    fn take_skipped(&self) -> Vec<Rc<str>> {
        std::mem::take(&mut *self.skipped.borrow_mut())
    }

    fn destroy(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        self.destroyed.set(true);
        remove_all(&self.owner, &self.scripts.borrow());
        // From a microtask, whatever it throws or returns.
        let obj = self.obj();
        spawn_local(async move {
            let _ = call_hook(&obj, "destroy", &JsValue::UNDEFINED, &JsValue::UNDEFINED).await;
        });
    }

    /// Yes without `testConnection`, or when it answers true, or anything that is neither a
    /// boolean nor null or undefined; no when it answers false, null or undefined, throws or
    /// rejects. Asked from a microtask.
    fn test(self: Rc<Self>, done: Done) {
        spawn_local(async move {
            let none = JsValue::UNDEFINED;
            let yes = match call_hook(&self.obj(), "testConnection", &none, &none).await {
                Ok(None) => true,
                Ok(Some(v)) => v.as_bool().unwrap_or(!v.is_undefined() && !v.is_null()),
                Err(_) => false,
            };
            done(if yes {
                Ok(())
            } else {
                Err(DeliveryError::new(ErrorKind::Unknown, String::new()))
            });
        });
    }

    fn has_test(&self) -> bool {
        true
    }
}
