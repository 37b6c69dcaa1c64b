//! The browser side of a destination: what the engine calls to load it, deliver to it, tell it
//! about revocation and tear it down. Built-in types and JavaScript destinations implement it.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::rc::Rc;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::inject::{inject, parse_descriptor, remove_all, remove_revoked};
use super::js::{method, set};
use super::platform::error_message;
use crate::consent::Purposes;
use crate::error::{DeliveryError, ErrorKind};
use crate::event::{Envelope, EventKind};
use crate::manager::BatchLimits;
use crate::script::ScriptDescriptor;

/// A boxed local future.
pub type Fut<T> = Pin<Box<dyn Future<Output = T>>>;

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
}

/// A destination instance, as driven by the engine.
pub trait Destination {
    /// Injects its scripts and initialises it.
    fn load(self: Rc<Self>, env: LoadEnv) -> Fut<Result<(), DeliveryError>>;
    /// Delivers events (a batch only for batching destinations) in order.
    fn deliver(self: Rc<Self>, events: Vec<Event>) -> Fut<Result<(), DeliveryError>>;
    /// Consent for it was revoked: remove its non-persistent scripts.
    fn revoke(&self) {}
    /// `unloadDestination`: destroy the instance and remove its scripts.
    fn destroy(&self) {}
    /// `testDestination`: whether it can reach its backend.
    fn test(self: Rc<Self>) -> Fut<bool> {
        Box::pin(async { true })
    }
    /// Batching limits, for destinations that send batches.
    fn batch(&self) -> Option<BatchLimits> {
        None
    }
    /// Whether undelivered events are persisted (see `persist` / `forget` / `restore`).
    fn durable(&self) -> bool {
        false
    }
    /// Persists an accepted event before it is sent.
    fn persist(&self, _event: &Event) {}
    /// Forgets a persisted event (acknowledged, dead-lettered or purged).
    fn forget(&self, _event: &Event) {}
    /// Undelivered events persisted by an earlier page, to deliver first.
    fn restore(&self) -> Fut<Vec<Restored>> {
        Box::pin(async { Vec::new() })
    }
    /// Hands events to the browser at page hide (`navigator.sendBeacon` or a keepalive fetch);
    /// returns how many of them, from the front, the browser took (the rest stay queued).
    fn beacon(&self, _events: &[Event]) -> usize {
        0
    }
}

/// A destination whose behaviour comes from a JavaScript object made by a registered factory.
pub struct JsDestination {
    id: String,
    obj: JsValue,
    settings: JsValue,
    scripts: core::cell::RefCell<Vec<ScriptDescriptor>>,
    /// Bumped by `revoke` and `destroy`: a load started before stops injecting and does not
    /// initialise.
    generation: core::cell::Cell<u32>,
}

impl JsDestination {
    /// Calls `factory(settings)`; an error names the config entry.
    pub fn create(
        factory: &Function,
        id: &str,
        settings: &Object,
        path: &str,
    ) -> Result<Self, String> {
        let obj = factory
            .call1(&JsValue::NULL, settings)
            .map_err(|e| [path, ": destination factory threw: ", &error_message(&e)].concat())?;
        if !obj.is_object() {
            return Err([path, ": destination factory must return an object"].concat());
        }
        Ok(JsDestination {
            id: id.into(),
            obj,
            settings: settings.into(),
            scripts: Default::default(),
            generation: Default::default(),
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

impl Destination for JsDestination {
    fn load(self: Rc<Self>, env: LoadEnv) -> Fut<Result<(), DeliveryError>> {
        Box::pin(async move {
            let generation = self.generation.get();
            let revoked =
                || DeliveryError::new(ErrorKind::ScriptLoad, "consent revoked while loading");
            let consent = consent_object(env.consent);
            let list = method(&self.obj, "scripts", &self.settings, &consent)
                .await
                .map_err(|e| unknown(&e))?;
            if let Some(list) = list.filter(|l| !l.is_undefined() && !l.is_null()) {
                if !Array::is_array(&list) {
                    return Err(DeliveryError::new(
                        ErrorKind::ScriptLoad,
                        "scripts() must return an array",
                    ));
                }
                let arr = super::js::items(&list)
                    .map_err(|m| DeliveryError::new(ErrorKind::ScriptLoad, m))?;
                let mut descs = Vec::new();
                for (i, d) in arr.into_iter().enumerate() {
                    let path = [&self.id, ".scripts()[", &crate::json::dec(i as u64), "]"].concat();
                    descs.push(
                        parse_descriptor(&d, &path)
                            .map_err(|m| DeliveryError::new(ErrorKind::ScriptLoad, m))?,
                    );
                }
                // Known before injecting, so a revocation during the load removes them.
                *self.scripts.borrow_mut() = descs.clone();
                for d in &descs {
                    if self.generation.get() != generation {
                        return Err(revoked());
                    }
                    inject(d, env.nonce.as_deref(), env.timeout_ms).await?;
                }
            }
            if self.generation.get() != generation {
                return Err(revoked());
            }
            Settled(method(&self.obj, "initialize", &self.settings, &JsValue::UNDEFINED).0).await
        })
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>) -> Fut<Result<(), DeliveryError>> {
        let list = Array::new();
        for ev in &events {
            list.push(&JsValue::from_str(hook(ev.kind)));
            list.push(&ev.payload);
            list.push(&JsValue::from_str(&ev.json));
        }
        Box::pin(Settled(JsFuture::from(deliver_events(
            &self.obj, &self.id, &list,
        ))))
    }

    fn revoke(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_revoked(&self.scripts.borrow());
    }

    fn destroy(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        remove_all(&self.scripts.borrow());
        destroy_hook(&self.obj);
    }

    fn test(self: Rc<Self>) -> Fut<bool> {
        Box::pin(Tested(JsFuture::from(test_hook(&self.obj))))
    }
}

/// Settles with a hook's promise; a rejection is an `unknown` failure.
struct Settled(JsFuture);

impl Future for Settled {
    type Output = Result<(), DeliveryError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map(|_| ()).map_err(|e| unknown(&e)))
    }
}

/// The answer of `testHook`.
struct Tested(JsFuture);

impl Future for Tested {
    type Output = bool;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.is_ok_and(|v| v.is_truthy()))
    }
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    /// Delivers the events of `list` (`[kind, payload, json, ...]`) in order, each with
    /// `deliverEvent`; rejects with the first failure.
    #[wasm_bindgen(js_name = deliverEvents)]
    fn deliver_events(obj: &JsValue, id: &str, list: &Array) -> Promise;
    /// Calls `destroy()` in a microtask, ignoring what it throws or returns.
    #[wasm_bindgen(js_name = destroyHook)]
    fn destroy_hook(obj: &JsValue);
    /// Resolves what `testConnection()` says, as a boolean (true without the method).
    #[wasm_bindgen(js_name = testHook)]
    fn test_hook(obj: &JsValue) -> Promise;
}
