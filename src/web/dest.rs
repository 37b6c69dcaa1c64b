//! The browser side of a destination: what the engine calls to load it, deliver to it, tell it
//! about revocation and tear it down. Built-in types and JavaScript destinations implement it.

use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;

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
    obj: JsValue,
    settings: JsValue,
    scripts: std::cell::RefCell<Rc<Vec<ScriptDescriptor>>>,
    /// Bumped by `revoke` and `destroy`: a load started before stops injecting and does not
    /// initialise.
    generation: Rc<std::cell::Cell<u32>>,
    /// The state of the delivery in flight, shared with `deliverEvents`: the event being
    /// delivered and whether it failed or timed out.
    flight: std::cell::RefCell<JsValue>,
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
        let obj = match factory.call1(&JsValue::NULL, settings) {
            Ok(o) => o,
            Err(e) => {
                return Err([path, ": destination factory threw: ", &error_message(&e)].concat())
            }
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
        Ok(JsDestination {
            id: id.into(),
            owner,
            obj,
            settings: settings.into(),
            scripts: Default::default(),
            generation: Default::default(),
            flight: std::cell::RefCell::new(JsValue::UNDEFINED),
        })
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

/// Calls `done` once a hook's promise settles; a rejection is an `unknown` failure.
fn settled(p: &Promise, done: Done) {
    let p = JsFuture::from(p.clone());
    spawn_local(async move { done(p.await.map(drop).map_err(|e| unknown(&e))) });
}

impl Destination for JsDestination {
    fn load(self: Rc<Self>, env: LoadEnv, done: Done) {
        let generation = self.generation.get();
        let consent = consent_object(env.consent);
        let ms = env.timeout_ms;
        let p = call_hook(&self.obj, "scripts", &self.settings, &consent);
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
                            Ok(()) => settled(
                                &call_hook(
                                    &self.obj,
                                    "initialize",
                                    &self.settings,
                                    &JsValue::UNDEFINED,
                                ),
                                timed(ms, late("initialize", ms), done),
                            ),
                            Err(e) => done(Err(e)),
                        }
                    }),
                }
                .run();
            }),
        );
        let p = JsFuture::from(p);
        spawn_local(async move { k(p.await.map_err(|e| unknown(&e))) });
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>, done: Done) {
        let list = Array::new();
        for ev in &events {
            list.push(&JsValue::from_str(hook(ev.kind)));
            list.push(&ev.payload);
            list.push(&JsValue::from_str(&ev.json));
        }
        let at = Array::new();
        *self.flight.borrow_mut() = at.clone().into();
        settled(&deliver_events(&self.obj, &self.id, &list, &at), done);
    }

    fn failed(&self, error: &DeliveryError) {
        // Its own failures are `unknown`: a timeout is the engine's.
        if error.kind == ErrorKind::Timeout {
            let at = self.flight.borrow().clone();
            hook_timed_out(&self.obj, &at, &error.message);
        }
    }

    fn revoke(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_revoked(&self.owner, &self.scripts.borrow());
    }

    fn destroy(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_all(&self.owner, &self.scripts.borrow());
        destroy_hook(&self.obj);
    }

    fn test(self: Rc<Self>, done: Done) {
        settled(&test_hook(&self.obj), done);
    }

    fn has_test(&self) -> bool {
        true
    }
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    /// Calls `obj[name](a, b)` if it is a function and resolves with what it returns (a
    /// returned promise awaited; undefined without such a method); rejects with what it threw.
    #[wasm_bindgen(js_name = callHook)]
    fn call_hook(obj: &JsValue, name: &str, a: &JsValue, b: &JsValue) -> Promise;
    /// Delivers the events of `list` (`[kind, payload, json, ...]`) in order, each with
    /// `deliverEvent`; rejects with the first failure. `at`: the state of this delivery.
    #[wasm_bindgen(js_name = deliverEvents)]
    fn deliver_events(obj: &JsValue, id: &str, list: &Array, at: &Array) -> Promise;
    /// The delivery of `at` timed out: calls `onError(error, event)` with an Error of kind
    /// 'timeout' and `message` (unless it was told of a failure already).
    #[wasm_bindgen(js_name = hookTimedOut)]
    fn hook_timed_out(obj: &JsValue, at: &JsValue, message: &str);
    /// Calls `destroy()` in a microtask, ignoring what it throws or returns.
    #[wasm_bindgen(js_name = destroyHook)]
    fn destroy_hook(obj: &JsValue);
    /// Resolves when `testConnection()` says yes (also without the method), else rejects.
    #[wasm_bindgen(js_name = testHook)]
    fn test_hook(obj: &JsValue) -> Promise;
}
