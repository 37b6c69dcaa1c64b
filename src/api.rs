//! The JavaScript API (`Analytics`): converts arguments, throws `TypeError`s that name the bad
//! argument, and hands everything else to the engine.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::consent::{Consent, Purposes};
use crate::dead_letter::DeadLetterQueue;
use crate::event::{Envelope, EventKind};
use crate::manager::{DestSpec, Earlier, Manager};
use crate::ports::{FallbackStorage, Log};
use crate::web::config::{self, parse_consent_object};
use crate::web::dest::{consent_object, CreateEnv, Restored};
use crate::web::engine::{Engine, Pending};
use crate::web::event::{
    check_size, iso_date, object_arg, options_arg, page_context, Identity, PAGE_KEYS,
};
use crate::web::js::{error, field, get, is_plain_object, set, set_field, type_error};
use crate::web::lifecycle::{PageEvent, PageEvents};
use crate::web::platform::{self, navigator_get, now, ConsoleLog, WebRng};
use crate::web::registry;
use crate::web::remote::Remote;
use crate::web::results::{to_js, DeadLetterInfo, StatusInfo};
use wasm_bindgen_futures::{spawn_local, JsFuture};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A new number for each client created in this page (see `CreateEnv::instance`).
fn next_instance() -> u64 {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    u64::from(COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A loaded analytics client. Create it with `await Analytics.load(config)`.
#[wasm_bindgen]
pub struct Analytics {
    engine: Rc<Engine>,
    /// Shared with the page listener, which follows identity changes made in other tabs.
    identity: Rc<RefCell<Identity>>,
    consent: Cell<Consent>,
    /// `{ necessary: true, ... }` for a consent value, kept until the consent changes: every
    /// event is stamped with a copy of it.
    prefs: RefCell<(Purposes, Object)>,
    context: Object,
    /// The page event listeners (hide, visibility, online, offline, identity), removed with
    /// the client.
    listener: RefCell<Option<PageEvents>>,
    remote: Option<Rc<Remote>>,
}

#[wasm_bindgen]
impl Analytics {
    /// Validates `config`, creates every destination and starts delivery (eager loads, the
    /// relay's outbox from an earlier page). Rejects with an Error naming the bad field.
    #[wasm_bindgen(js_name = load, unchecked_return_type = "Promise<Analytics>")]
    pub fn load_promise(
        #[wasm_bindgen(unchecked_optional_param_type = "AnalyticsConfig")] config: JsValue,
    ) -> Promise {
        // A bug (a panic) shows its message and stack in the console, not `unreachable`.
        console_error_panic_hook::set_once();
        let (p, resolve, reject) = crate::web::engine::deferred();
        // From a microtask: validates the config and creates everything, then goes on with
        // `restore_from`.
        spawn_local(async move {
            match Analytics::build(&config) {
                Ok(a) => a.restore_from(0, resolve),
                Err(e) => {
                    let _ = reject.call1(&JsValue::NULL, &e);
                }
            }
        });
        p
    }
}

/// Whether `text` is a JSON object: the check of a stored dead letter's event (one that is not,
/// written by another script, is discarded instead of listed or replayed).
fn json_object(text: &str) -> bool {
    match js_sys::JSON::parse(text) {
        Ok(v) => v.is_object() && !Array::is_array(&v),
        Err(_) => false,
    }
}

impl Analytics {
    /// Validates the config and creates everything, synchronously.
    fn build(config: &JsValue) -> Result<Analytics, JsValue> {
        let cfg = match config::parse(config) {
            Ok(c) => c,
            Err(m) => return Err(error(&m)),
        };
        let log = Rc::new(ConsoleLog { debug: cfg.debug });
        let log_dyn: Rc<dyn Log> = log.clone();
        let storage = crate::web::storage::local_storage_or_memory(&*log_dyn);
        let env = CreateEnv {
            prefix: cfg.storage_prefix.clone(),
            storage: storage.clone(),
            log: log.clone(),
            instance: [&next_instance().to_string(), ":"].concat(),
            timeout_ms: cfg.timeout_ms,
        };
        let mut dests = Vec::new();
        let mut specs = Vec::new();
        let mut kinds = Vec::new();
        for entry in &cfg.destinations {
            // A vendor's page-wide global (fbq, gtag, posthog) would send every event to both
            // accounts (or, for PostHog, ignore the second init).
            if crate::vendor_map::Vendor::from_kind(&entry.kind).is_some()
                && kinds.contains(&entry.kind)
            {
                return Err(error(
                    &[
                        &entry.path,
                        ": a second '",
                        &entry.kind,
                        "' destination is not supported (the vendor's page-wide tag would send every event to both)",
                    ]
                    .concat(),
                ));
            }
            let d = match registry::create(entry, &env) {
                Ok(d) => d,
                Err(m) => return Err(error(&m)),
            };
            specs.push(DestSpec {
                id: entry.id.clone(),
                required: match entry.required {
                    Some(r) => r,
                    None => registry::default_required(&entry.kind),
                },
                batch: d.batch(),
                durable: d.durable(),
            });
            kinds.push(entry.kind.clone());
            dests.push(d);
        }
        let gpc = navigator_get("globalPrivacyControl")
            .as_bool()
            .unwrap_or(false);
        let consent = Consent::initial(cfg.consent, gpc, cfg.honor_gpc);
        let dlq = DeadLetterQueue::open(
            cfg.dead_letter,
            storage.clone(),
            log_dyn.clone(),
            json_object,
            now(),
        );
        let memory = Rc::new(crate::web::storage::WebStorage::memory());
        let identity = Identity::load(
            FallbackStorage::new(storage, memory, log_dyn),
            &cfg.storage_prefix,
        );
        let mgr = Manager::new(cfg.manager, specs, consent, Box::new(WebRng::default()));
        let nonce: Option<Rc<str>> = cfg.nonce.map(Into::into);
        let remote = match cfg.scripts_url {
            Some(url) => Some(Remote::new(
                env.instance.clone(),
                url,
                cfg.scripts_cache_ttl_ms,
                &cfg.storage_prefix,
                nonce.clone(),
                cfg.timeout_ms,
            )),
            None => None,
        };
        let engine = Engine::new(mgr, dests, kinds, dlq, log, nonce, cfg.timeout_ms);
        let context = Object::new();
        let library = Object::new();
        set(&library, "name", &JsValue::from_str("consent-analytics"));
        set(&library, "version", &JsValue::from_str(VERSION));
        set(&context, "library", &library);
        set(&context, "userAgent", &navigator_get("userAgent"));
        set(&context, "locale", &navigator_get("language"));
        Ok(Analytics {
            engine,
            identity: Rc::new(RefCell::new(identity)),
            consent: Cell::new(consent),
            prefs: RefCell::new((consent.granted(), consent_object(consent.granted()))),
            context,
            listener: RefCell::new(None),
            remote,
        })
    }

    /// The rest of `Analytics.load`: delivers what earlier pages left in durable outboxes
    /// first (restoring them in order, from destination `i` on), starts the manager (eager
    /// loads, the relay), waits until no durable destination is loading, then starts the
    /// remote scripts, listens to page hide and online changes, and resolves the load's
    /// promise with the client.
    fn restore_from(self, i: usize, resolve: Function) {
        let engine = self.engine.clone();
        let mut j = i;
        while let Some(d) = engine.dests.get(j) {
            if d.durable() {
                return d.restore(Box::new(move |list| {
                    self.restored(j, list);
                    self.restore_from(j + 1, resolve)
                }));
            }
            j += 1;
        }
        let cmds = engine.mgr.borrow_mut().start(now());
        let (p, res, _) = crate::web::engine::deferred();
        engine.wait_loads(true, res, cmds);
        let p = JsFuture::from(p);
        spawn_local(async move {
            let _ = p.await;
            if let Some(r) = &self.remote {
                r.refresh(self.consent.get().granted());
            }
            self.listen_page_events();
            let _ = resolve.call1(&JsValue::NULL, &self.into());
        });
    }

    /// Hands what an earlier page left in destination `i`'s durable outbox to the manager.
    fn restored(&self, i: usize, list: Vec<Restored>) {
        let consent = self.consent.get();
        for r in list {
            let env = Envelope {
                seq: 0,
                kind: EventKind::Track,
                consent: consent.granted(),
                message_id: r.message_id.into(),
                json: r.json.into(),
                payload: r.payload,
            };
            self.engine.mgr.borrow_mut().restore(i, env, now());
        }
    }
}

#[wasm_bindgen]
impl Analytics {
    /// Adds a JavaScript destination type; `factory(settings)` returns the destination object.
    #[wasm_bindgen(js_name = registerDestination)]
    pub fn register_destination(
        #[wasm_bindgen(unchecked_param_type = "string")] kind: JsValue,
        #[wasm_bindgen(unchecked_param_type = "DestinationFactory")] factory: JsValue,
    ) -> Result<(), JsValue> {
        let Some(kind) = kind.as_string() else {
            return Err(type_error("registerDestination: type must be a string"));
        };
        if !factory.is_function() {
            return Err(type_error(
                "registerDestination: factory must be a function",
            ));
        }
        match registry::register(&kind, factory.unchecked_into()) {
            Ok(()) => Ok(()),
            Err(m) => Err(type_error(&m)),
        }
    }

    /// Records a `track` event; returns its messageId.
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub fn track(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] event: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Properties | null")] properties: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EventOptions | null")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.call(EventKind::Track, event, properties, options)
    }

    /// Records a `page` event; `url`, `path`, `referrer`, `title` and `search` default from
    /// the document.
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub fn page(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string | null")] name: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Properties | null")] properties: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EventOptions | null")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.call(EventKind::Page, name, properties, options)
    }

    /// Identifies the visitor: persists `userId` and merges `traits` (replaces them for another
    /// user).
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub fn identify(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string | number | null")] user_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Properties | null")] traits: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EventOptions | null")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.call(EventKind::Identify, user_id, traits, options)
    }

    /// Associates the visitor with a group.
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub fn group(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | number")] group_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Properties | null")] traits: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EventOptions | null")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.call(EventKind::Group, group_id, traits, options)
    }

    /// Links `previousId` (default: the current user or anonymous id) to `userId`.
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub fn alias(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | number")] user_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "string | number | null")]
        previous_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EventOptions | null")] options: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.call(EventKind::Alias, user_id, previous_id, options)
    }

    /// Forgets the user: clears userId, traits and group, and starts a new anonymousId.
    pub fn reset(&self) {
        self.identity.borrow_mut().reset();
        for d in &self.engine.dests {
            d.reset();
        }
    }

    /// Merges `partial` into the consent, emits a `consent` event, and loads or unloads
    /// destinations accordingly. Rejects (changing nothing) on an unknown purpose.
    #[wasm_bindgen(js_name = setConsent, unchecked_return_type = "Promise<void>")]
    pub fn set_consent(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ConsentUpdate")] partial: JsValue,
    ) -> Promise {
        let changes = match parse_consent_object(&partial, "setConsent") {
            Ok(c) => c,
            Err(m) => return Promise::reject(&error(&m)),
        };
        let before = self.consent.get();
        let c = before.merged(&changes);
        self.consent.set(c);
        self.engine.set_consent(before, c);
        if let Some(r) = &self.remote {
            r.refresh(c.granted());
        }
        let prefs = consent_object(c.granted());
        let e = Object::new();
        let cp = Object::new();
        set(&cp, "categoryPreferences", &prefs);
        set(&e, "consent", &cp);
        let _ = self.capture(EventKind::Consent, e, &JsValue::UNDEFINED, None);
        self.engine.emit("consent", &prefs);
        // Resolved by a task queued after the one that applies the change to the manager
        // (tasks run in order): once awaited, `status()` reflects it.
        let (p, resolve, _) = crate::web::engine::deferred();
        spawn_local(async move {
            let _ = resolve.call0(&JsValue::NULL);
        });
        p
    }

    /// The current preferences, with all five purposes.
    #[wasm_bindgen(unchecked_return_type = "ConsentPreferences")]
    pub fn consent(&self) -> JsValue {
        consent_object(self.consent.get().granted()).into()
    }

    /// Sends what batching destinations hold; resolves when it is delivered or queued for retry.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        // Queued behind what was tracked before this call, which is routed first.
        let (p, res, _) = crate::web::engine::deferred();
        self.engine.enqueue(Pending::Flush(res));
        p
    }

    /// Loads every destination the current consent allows; resolves once none is loading.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn preload(&self) -> Promise {
        self.engine.mgr.borrow_mut().preload();
        let cmds = self.engine.mgr.borrow_mut().poll(now());
        let (p, res, _) = crate::web::engine::deferred();
        self.engine.wait_loads(false, res, cmds);
        p
    }

    /// Each destination's `{ id, type, state, circuit, delivered, failed, deadLettered, lastError }`.
    #[wasm_bindgen(unchecked_return_type = "DestinationStatus[]")]
    pub fn status(&self) -> Array {
        let status = self.engine.mgr.borrow().status(now());
        let list: Vec<StatusInfo> = status
            .iter()
            .zip(self.engine.kinds.iter())
            .map(|(s, kind)| StatusInfo::new(s, kind))
            .collect();
        to_js(&list).dyn_into().unwrap_or_default()
    }

    /// Resolves whether destination `id` can reach its backend (a vendor tag or `script`
    /// destination, without a test of its own: whether it is loaded).
    #[wasm_bindgen(js_name = testDestination, unchecked_return_type = "Promise<boolean>")]
    pub fn test_destination(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        match self.dest_index(&id) {
            Ok(i) => self.engine.test(i),
            Err(e) => Promise::reject(&e),
        }
    }

    /// Listens to `'delivered'`, `'error'`, `'dead-letter'`, `'consent'` or `'loaded'`.
    /// (Its TypeScript declaration, generic over the name, is in `types.rs`.)
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, name: JsValue, cb: JsValue) -> Result<(), JsValue> {
        let name = name.as_string().unwrap_or_default();
        check_event_name(&name)?;
        if !cb.is_function() {
            return Err(type_error("on: callback must be a function"));
        }
        self.engine.on(name, cb.unchecked_into());
        Ok(())
    }

    /// Removes a listener added with `on` (TypeScript declaration in `types.rs`).
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, name: JsValue, cb: JsValue) {
        self.engine.off(&name.as_string().unwrap_or_default(), &cb);
    }

    /// Adds a source middleware: `fn(event)` returns the event, a changed event, or null to drop.
    #[wasm_bindgen(js_name = addSourceMiddleware)]
    pub fn add_source_middleware(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SourceMiddleware")] f: JsValue,
    ) -> Result<(), JsValue> {
        if !f.is_function() {
            return Err(type_error(
                "addSourceMiddleware: middleware must be a function",
            ));
        }
        self.engine.add_middleware(f.unchecked_into());
        Ok(())
    }

    /// The dead letters, oldest first, optionally for one destination (a stored entry whose
    /// event is not a JSON object is discarded with a warning).
    #[wasm_bindgen(js_name = deadLetters, unchecked_return_type = "DeadLetter[]")]
    pub fn dead_letters(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string")] destination: JsValue,
    ) -> Result<Array, JsValue> {
        let destination = opt_id(&destination, "deadLetters")?;
        let mut dlq = self.engine.dlq.borrow_mut();
        let list: Vec<DeadLetterInfo> = dlq
            .list(destination.as_deref(), now())
            .into_iter()
            .map(DeadLetterInfo::from)
            .collect();
        Ok(to_js(&list).dyn_into().unwrap_or_default())
    }

    /// Re-delivers dead letters (one attempt each); resolves `{ retried, succeeded, failed }`;
    /// failures go back to the queue (the same entry, its attempts added up), as do (counted
    /// failed) those of a destination whose consent is missing now.
    #[wasm_bindgen(js_name = retryDeadLetters, unchecked_return_type = "Promise<RetryResult>")]
    pub fn retry_dead_letters(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string")] destination: JsValue,
    ) -> Promise {
        let destination = match opt_id(&destination, "retryDeadLetters") {
            Ok(d) => d,
            Err(e) => return Promise::reject(&e),
        };
        let entries = self
            .engine
            .dlq
            .borrow_mut()
            .take(destination.as_deref(), now());
        let engine = &self.engine;
        let mut by_dest: Vec<Vec<(Envelope<JsValue>, Earlier)>> = Vec::new();
        by_dest.resize_with(engine.dests.len(), Vec::new);
        let mut kept = 0u32;
        let consent = self.consent.get().granted();
        for e in entries {
            let envs = match self.index(&e.destination) {
                Some(i) if engine.mgr.borrow().allowed(i) => by_dest.get_mut(i),
                _ => None,
            };
            let Some(envs) = envs else {
                // Its destination is no longer configured, or its consent is missing now:
                // keep it for later (nothing is loaded or sent without consent).
                engine.dlq.borrow_mut().push(e, now());
                kept += 1;
                continue;
            };
            let payload = js_sys::JSON::parse(&e.event_json).unwrap_or(JsValue::NULL);
            let kind = EventKind::from_name(&get(&payload, "type").as_string().unwrap_or_default())
                .unwrap_or(EventKind::Track);
            let message_id: Rc<str> = get(&payload, "messageId")
                .as_string()
                .unwrap_or_default()
                .into();
            let earlier = Earlier {
                id: e.id,
                attempts: e.attempts,
                first_failed_at: e.first_failed_at,
            };
            let env = Envelope {
                seq: 0,
                kind,
                consent,
                message_id,
                json: e.event_json.into(),
                payload,
            };
            envs.push((env, earlier));
        }
        let mut tickets = Vec::new();
        let mut i = 0;
        // Counted by hand: smaller in wasm than `enumerate`.
        #[allow(clippy::explicit_counter_loop)]
        for envs in by_dest {
            if !envs.is_empty() {
                tickets.push(engine.mgr.borrow_mut().replay(i, envs, now()));
            }
            i += 1;
        }
        let (p, res, _) = crate::web::engine::deferred();
        // Those kept count as retried and failed.
        engine.wait_replay(tickets, [kept, 0, kept], res);
        engine.poll();
        p
    }

    /// Deletes dead letters (all, or one destination's); returns how many.
    #[wasm_bindgen(js_name = clearDeadLetters)]
    pub fn clear_dead_letters(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string")] destination: JsValue,
    ) -> Result<u32, JsValue> {
        let destination = opt_id(&destination, "clearDeadLetters")?;
        Ok(self.engine.dlq.borrow_mut().clear(destination.as_deref()) as u32)
    }

    /// Tries loading a failed destination again.
    #[wasm_bindgen(js_name = retryDestination, unchecked_return_type = "Promise<void>")]
    pub fn retry_destination(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        self.change_destination(&id, false)
    }

    /// Destroys a destination's instance and removes its scripts; a later event loads it again.
    #[wasm_bindgen(js_name = unloadDestination, unchecked_return_type = "Promise<void>")]
    pub fn unload_destination(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        self.change_destination(&id, true)
    }
}

impl Analytics {
    fn index(&self, id: &str) -> Option<usize> {
        self.engine.mgr.borrow().index_of(id)
    }

    /// The index of the destination named by an `id` argument, or the error to reject with.
    fn dest_index(&self, id: &JsValue) -> Result<usize, JsValue> {
        let Some(id) = id.as_string() else {
            return Err(type_error("destination id must be a string"));
        };
        match self.index(&id) {
            Some(i) => Ok(i),
            None => Err(unknown_dest(&id)),
        }
    }

    /// `retryDestination` (`unload` false) and `unloadDestination` (`unload` true).
    #[inline(never)]
    fn change_destination(&self, id: &JsValue, unload: bool) -> Promise {
        let i = match self.dest_index(id) {
            Ok(i) => i,
            Err(e) => return Promise::reject(&e),
        };
        if unload {
            self.engine.mgr.borrow_mut().unload_destination(i);
            self.engine.poll();
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        self.engine.mgr.borrow_mut().retry_destination(i);
        // Resolves once the load it started (and the retries of it) ended.
        let (p, resolve, _) = crate::web::engine::deferred();
        self.engine.wait_load(i, resolve);
        p
    }

    /// The preferences object for `granted`, rebuilt only when the consent changed.
    fn prefs(&self, granted: Purposes) -> Object {
        let mut cache = self.prefs.borrow_mut();
        if cache.0 != granted {
            *cache = (granted, consent_object(granted));
        }
        cache.1.clone()
    }

    /// `track`, `page`, `identify`, `group` and `alias`: checks the arguments (in that
    /// order: first, second, options) before changing anything, records the event and returns
    /// its messageId; a bad argument throws a `TypeError` named after the call.
    #[inline(never)]
    fn call(
        &self,
        kind: EventKind,
        a: JsValue,
        b: JsValue,
        c: JsValue,
    ) -> Result<JsValue, JsValue> {
        match self.event(kind, a, b, c) {
            Ok(v) => Ok(v),
            Err(m) => Err(call_error(kind.name(), &m)),
        }
    }

    fn event(
        &self,
        kind: EventKind,
        a: JsValue,
        b: JsValue,
        c: JsValue,
    ) -> Result<JsValue, String> {
        // Segment's argument shifting: `page(properties, options)` and
        // `identify(traits, options)` leave out the optional first argument when the first one
        // given is an object.
        let none = JsValue::UNDEFINED;
        let (a, b, c) =
            if matches!(kind, EventKind::Page | EventKind::Identify) && is_plain_object(&a) {
                (&none, &a, &b)
            } else {
                (&a, &b, &c)
            };
        let e = Object::new();
        let mut id = None;
        match kind {
            EventKind::Track => {
                if !a.is_string() || a.unchecked_ref::<js_sys::JsString>().trim().length() == 0 {
                    return Err("event must be a non-empty string".into());
                }
                let props = object_arg(b, "properties")?;
                set_field(&e, "event", a);
                set_field(&e, "properties", &props);
            }
            EventKind::Page => {
                if !a.is_undefined() && !a.is_null() && !a.is_string() {
                    return Err("name must be a string".into());
                }
                let props = object_arg(b, "properties")?;
                let merged = match crate::web::js::merged(&[&page_context(), &props]) {
                    Ok(m) => m,
                    Err(m) => return Err(["properties ", &m].concat()),
                };
                if a.is_string() {
                    set(&e, "name", a);
                }
                set(&e, "properties", &merged);
            }
            EventKind::Identify | EventKind::Group => {
                let group = kind == EventKind::Group;
                id = id_arg(a, if group { "groupId" } else { "userId" }, group)?;
                if let (true, Some(g)) = (group, &id) {
                    set(&e, "groupId", &JsValue::from_str(g));
                }
                set(&e, "traits", &object_arg(b, "traits")?);
            }
            _ => {
                let uid = id_arg(a, "userId", true)?;
                set(&e, "userId", &JsValue::from_str(&uid.unwrap_or_default()));
                let prev = id_arg(b, "previousId", false)?;
                let id = self.identity.borrow();
                let prev = match &prev {
                    Some(p) => p,
                    None => id.user_id.as_deref().unwrap_or(&id.anonymous_id),
                };
                set(&e, "previousId", &JsValue::from_str(prev));
            }
        }
        let options = options_arg(c)?;
        // What an identify sets is stamped on its event, and kept only once the event was
        // accepted (a rejected call changes nothing).
        let identify = kind == EventKind::Identify;
        let traits = if identify {
            let t = self
                .identity
                .borrow()
                .merged_traits(id.as_deref(), &get(&e, "traits"));
            set(&e, "traits", &t);
            Some(t)
        } else {
            None
        };
        let user = if identify { id.as_deref() } else { None };
        let message_id = self.capture(kind, e, &options, user)?;
        let mut ident = self.identity.borrow_mut();
        if kind == EventKind::Group {
            ident.group_id = id;
        } else if let Some(t) = traits {
            if let Some(u) = &id {
                ident.set_user(u);
            }
            ident.set_traits(t);
        }
        Ok(message_id)
    }

    /// Completes the common fields, serialises, and queues the event; `options` is checked.
    /// `user`: the userId an identify sets (else the persisted one is used).
    fn capture(
        &self,
        kind: EventKind,
        e: Object,
        options: &JsValue,
        user: Option<&str>,
    ) -> Result<JsValue, String> {
        let consent = self.consent.get().granted();
        let id = self.identity.borrow();
        let prefs = self.prefs(consent);
        let (anonymous_id, persisted_user) = id.values();
        let user = user.map(JsValue::from_str);
        let common = Common {
            anonymous_id,
            user_id: user.as_ref().unwrap_or(persisted_user),
            base: &self.context,
            prefs: &prefs,
        };
        let done = complete_event(&e, kind, options, &common);
        drop(id);
        let (json, mid) = match done {
            Ok((s, mid)) => (check_size(s)?, mid),
            Err(m) => return Err(["event cannot be serialised: ", &m].concat()),
        };
        let message_id: Rc<str> = mid.as_string().unwrap_or_default().into();
        self.engine.enqueue(Pending::Event {
            payload: e.into(),
            kind,
            consent,
            message_id,
            json: json.into(),
            gen: self.engine.consent_gen(),
        });
        Ok(mid)
    }

    /// Listens to the page events (see `lifecycle`) for as long as the client lives: the page
    /// being hidden hands over what is queued, online and offline pause and resume delivery,
    /// and an identity change in another tab or client of this page is followed here.
    fn listen_page_events(&self) {
        let weak = Rc::downgrade(&self.engine);
        let identity = Rc::downgrade(&self.identity);
        let events = PageEvents::listen(move |ev| {
            let (Some(e), Some(identity)) = (weak.upgrade(), identity.upgrade()) else {
                return;
            };
            match ev {
                // Another tab changed localStorage.
                PageEvent::StorageChanged(key) => identity.borrow_mut().follow(key),
                // Another client of this page changed it (see `lifecycle::identity_changed`).
                PageEvent::IdentityChanged => identity.borrow_mut().follow(None),
                PageEvent::Online => e.set_online(true),
                PageEvent::Offline => e.set_online(false),
                PageEvent::Hidden => e.page_hidden(),
            }
        });
        self.engine.set_online(platform::is_online());
        *self.listener.borrow_mut() = Some(events);
    }
}

/// A user or group id argument: a non-empty string or a finite number (as its decimal
/// string); undefined or null is `None` unless `required`.
fn id_arg(v: &JsValue, name: &str, required: bool) -> Result<Option<String>, String> {
    if !required && (v.is_undefined() || v.is_null()) {
        return Ok(None);
    }
    match v.as_string() {
        Some(s) if !s.is_empty() => Ok(Some(s)),
        _ => match v.as_f64() {
            Some(n) if n.is_finite() => Ok(crate::web::js::to_js_string(v)),
            _ => Err([name, " must be a non-empty string"].concat()),
        },
    }
}

/// An optional destination id argument: undefined or null for all, else a string.
fn opt_id(v: &JsValue, call: &str) -> Result<Option<String>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_string() {
        Some(s) => Ok(Some(s)),
        None => Err(type_error(
            &[call, ": destination id must be a string"].concat(),
        )),
    }
}

fn check_event_name(name: &str) -> Result<(), JsValue> {
    if matches!(
        name,
        "delivered" | "error" | "dead-letter" | "consent" | "loaded"
    ) {
        Ok(())
    } else {
        Err(type_error(
            &[
                "on: unknown event '",
                name,
                "' (delivered, error, dead-letter, consent, loaded)",
            ]
            .concat(),
        ))
    }
}

/// What every event carries besides its own fields: the identity and consent in force and
/// the context shared by every event of the client.
struct Common<'a> {
    anonymous_id: &'a JsValue,
    /// The persisted user id, or the one an identify sets (null when there is none).
    user_id: &'a JsValue,
    /// `userAgent`, `locale`, `library`: under `options.context`.
    base: &'a Object,
    /// `{ necessary: true, ... }` at capture (copied into each event: stamped whatever
    /// `options.context` says).
    prefs: &'a Object,
}

/// Completes event `e` of `kind` with the fields every event has and returns its JSON and
/// messageId, or why it cannot be serialised. `options` (validated, or undefined) may set `messageId` (else a new
/// uuid), `timestamp` (else now), `anonymousId`, `userId` (else the event's own, else the
/// common one, else null), `integrations` and `context`. `context` is the common one, then
/// `options.context`, then `page` and the consent stamp; `context.page` is merged key by key as
/// Segment's is: the document's, then (page events) the page fields of the properties, then
/// `options.context.page`. Page data is copied as data: a `__proto__` key stays an own key.
fn complete_event(
    e: &Object,
    kind: EventKind,
    options: &JsValue,
    common: &Common,
) -> Result<(String, JsValue), String> {
    // An option is read only when options were given, and kept if `keep` says it is usable:
    // an event without options crosses into JavaScript far less often.
    let given = options.is_object();
    let option = |k: &str, keep: fn(&JsValue) -> bool| given.then(|| get(options, k)).filter(keep);
    set_field(e, "type", &field(kind.name()));
    let message_id = option("messageId", JsValue::is_string).unwrap_or_else(platform::uuid_value);
    set_field(e, "messageId", &message_id);
    let timestamp = match option("timestamp", |t| !t.is_undefined() && !t.is_null()) {
        Some(t) => iso_date(&t).unwrap_or_default(),
        None => js_sys::Date::new_0().to_iso_string().into(),
    };
    set_field(e, "timestamp", &timestamp);
    let anonymous_id = option("anonymousId", JsValue::is_string);
    set_field(
        e,
        "anonymousId",
        anonymous_id.as_ref().unwrap_or(common.anonymous_id),
    );
    // Only an alias has a userId of its own.
    let own = (kind == EventKind::Alias)
        .then(|| get(e, "userId"))
        .filter(JsValue::is_string);
    let user_id = option("userId", JsValue::is_string).or(own);
    set_field(e, "userId", user_id.as_ref().unwrap_or(common.user_id));
    let context = option("context", JsValue::is_object);
    let mut page = page_context();
    if kind == EventKind::Page {
        let properties = get(e, "properties");
        for k in PAGE_KEYS {
            set_field(&page, k, &get(&properties, k));
        }
        let name = get(e, "name");
        if name.is_truthy() {
            set_field(&properties, "name", &name);
        }
    }
    let full = match &context {
        // The client's own context: no page data to copy as data.
        None => Object::assign(&Object::new(), common.base),
        Some(context) => {
            let page_option = get(context, "page");
            if page_option.is_object() {
                page = crate::web::js::merged(&[&page, &page_option])?;
            }
            crate::web::js::merged(&[common.base, context])?
        }
    };
    set_field(&full, "page", &page);
    let stamp = Object::new();
    set_field(
        &stamp,
        "categoryPreferences",
        &Object::assign(&Object::new(), common.prefs),
    );
    set_field(&full, "consent", &stamp);
    set_field(e, "context", &full);
    let integrations =
        option("integrations", JsValue::is_object).unwrap_or_else(|| Object::new().into());
    set_field(e, "integrations", &integrations);
    let json = crate::web::js::stringify(e).map_err(|e| platform::error_message(&e))?;
    Ok((json, message_id))
}

/// A `TypeError` whose message is `<call>: <m>`.
#[inline(never)]
fn call_error(call: &str, m: &str) -> JsValue {
    type_error(&[call, ": ", m].concat())
}

fn unknown_dest(id: &str) -> JsValue {
    error(&["unknown destination id: ", id].concat())
}
