//! Injects `<script>` elements from descriptors with web-sys: the URL policy first, then the
//! element with its id, nonce, SRI and extra attributes, appended to head or body, and a load
//! that ends on its `load` or `error` event, a Content Security Policy violation, or the timeout.
//!
//! One record per script id is kept for the page (a `thread_local!`): the owners using it, and
//! the element this library injected with its load, which every owner (and every retry)
//! shares. So a script is injected once per page: a second owner, or a retry after a timeout,
//! waits on the element already in flight instead of injecting it again, and the code never
//! runs twice.
//!
//! An element with the descriptor's id that the page put there itself counts only when it is
//! that script: a `<script>` with the same resolved `src` (or, inline, the same text). Inline, it
//! has run. With a `src`, it counts as loaded once the document has finished loading
//! (`readyState` `complete`: the window's `load` waits for the scripts inserted before it);
//! while the document still loads, its own `load` or `error` event decides, or the window's
//! `load` if that comes first (it had loaded before we looked). Any other element with that id
//! (a `<div id="app">`, a script with another `src`) is a clash: the load fails naming it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use gloo_timers::future::TimeoutFuture;
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local};
use web_sys::{
    Document, Element, Event, EventTarget, HtmlScriptElement, Node, SecurityPolicyViolationEvent,
};

use super::dest::Done;
use super::platform::resolve_url;
use crate::error::{DeliveryError, ErrorKind};
use crate::script::{check_url, refused, ScriptDescriptor, Source, Target};
use crate::web::config::de::{from_value, PATH};
use crate::web::config::PurposeList;

/// Attributes set from the descriptor's own fields (`src` under the URL policy), refused in
/// `attributes`.
const OWN: &[&str] = &[
    "src",
    "id",
    "nonce",
    "integrity",
    "crossorigin",
    "async",
    "defer",
];

/// A script descriptor as JavaScript gives it (c15t's shape), before the checks of
/// [`Descriptor::check`].
#[derive(serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a script descriptor object"
)]
pub struct Descriptor {
    id: Option<String>,
    src: Option<String>,
    text_content: Option<String>,
    r#async: Option<bool>,
    defer: Option<bool>,
    nonce: Option<String>,
    integrity: Option<String>,
    cross_origin: Option<String>,
    attributes: Option<Attributes>,
    target: Option<TargetName>,
    persist_after_consent_revoked: Option<bool>,
    /// Only in a remote list (see [`parse_descriptor`]).
    required_consent: Option<PurposeList>,
}

/// `target`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum TargetName {
    Head,
    Body,
}

/// `attributes`: extra attributes, in the object's order.
struct Attributes(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Attributes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Attributes, A::Error> {
                let mut out = Vec::new();
                while let Some((AttributeName(k), v)) = map.next_entry::<_, String>()? {
                    out.push((k, v));
                }
                Ok(Attributes(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The name of an extra attribute: not one the descriptor's own fields set (and the URL
/// policy checks), which cannot come in through `attributes`.
struct AttributeName(String);

impl<'de> serde::Deserialize<'de> for AttributeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = String::deserialize(d)?;
        if OWN.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(serde::de::Error::custom(
                [PATH, " is not allowed: use the descriptor's own field"].concat(),
            ));
        }
        Ok(AttributeName(k))
    }
}

impl Descriptor {
    /// The descriptor, checked; errors name the field under `path`. Only a remote list's
    /// descriptors (`own_consent`) may carry a `requiredConsent`: a destination's scripts follow
    /// the destination's, so one there is refused, never ignored.
    pub fn check(self, path: &str, own_consent: bool) -> Result<ScriptDescriptor, String> {
        if !own_consent && self.required_consent.is_some() {
            return Err([
                "unknown option ",
                path,
                ".requiredConsent (set requiredConsent on the destination)",
            ]
            .concat());
        }
        let id = match self.id {
            Some(s) if !s.is_empty() => s,
            _ => return Err([path, ".id is required (a non-empty string)"].concat()),
        };
        let source = match (self.src, self.text_content) {
            (Some(s), None) => Source::Src(s),
            (None, Some(t)) => Source::Text(t),
            _ => return Err([path, " needs exactly one of src and textContent"].concat()),
        };
        if let Source::Src(src) = &source {
            if let Err(m) = resolve_and_check(src) {
                return Err([path, ".src: ", &m].concat());
            }
        }
        let mut d = ScriptDescriptor::src(&id, "");
        d.source = source;
        d.is_async = self.r#async.unwrap_or(true);
        d.defer = self.defer.unwrap_or(false);
        d.nonce = self.nonce;
        d.integrity = self.integrity;
        d.cross_origin = self.cross_origin;
        d.persist_after_revoke = self.persist_after_consent_revoked.unwrap_or(false);
        d.target = match self.target {
            None | Some(TargetName::Head) => Target::Head,
            Some(TargetName::Body) => Target::Body,
        };
        d.attributes = self.attributes.map(|a| a.0).unwrap_or_default();
        Ok(d)
    }
}

/// Reads a script descriptor from JavaScript; errors name the field under `path`. See
/// [`Descriptor::check`] for `own_consent`.
pub fn parse_descriptor(
    v: &JsValue,
    path: &str,
    own_consent: bool,
) -> Result<ScriptDescriptor, String> {
    from_value::<Descriptor>(v, path)?.check(path, own_consent)
}

/// Resolves `src` against the document's base URL and applies the URL policy.
pub fn resolve_and_check(src: &str) -> Result<String, String> {
    let Some((resolved, _, origin)) = resolve_url(src) else {
        return Err(refused("not a valid URL", src));
    };
    check_url(&resolved, &origin)?;
    Ok(resolved)
}

/// Injects `d` (once per id: see the module's doc), waits for it to load and calls `done` with
/// the outcome. `default_nonce` is `config.nonce`. A `src` the URL policy refuses fails without
/// injecting anything.
pub fn inject(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
    timeout_ms: u64,
    done: Done,
) {
    let loading = load(d, owner, default_nonce, timeout_ms);
    spawn_local(async move { done(loading.await) });
}

/// Injects `d` for `owner` now and returns the future of its outcome: `Ok` once it has loaded
/// (inline code: in the task after it ran; a script loaded before: at once), else a
/// `script_load` failure naming the script by id and `src`. The timeout is this caller's: an
/// element still loading when it passes stays in the page, and the next call for its id waits
/// on it.
/// `owner` (a destination's id, `""` for remote scripts) is recorded as a user of the script:
/// its element goes only when no owner uses it any more ([`remove_revoked`], [`remove_all`]).
pub fn load(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> impl Future<Output = Result<(), DeliveryError>> + 'static {
    // Started here, not on the first poll: a revocation right after this call finds the
    // element and its record.
    let begun = begin(d, owner, default_nonce);
    let d = d.clone();
    async move {
        let outcome = match begun {
            Ok(None) => Ok(()),
            Ok(Some(flight)) => Wait::new(flight, timeout_ms).await,
            Err(why) => Err(why),
        };
        outcome.map_err(|why| why.error(&d))
    }
}

/// [`load`] as a promise for JavaScript-driven sequences: it resolves `undefined` once `d` has
/// loaded, else the failure message (it never rejects; see [`outcome`]).
pub fn start(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> Promise {
    let loading = load(d, owner, default_nonce, timeout_ms);
    future_to_promise(async move {
        Ok(match loading.await {
            Ok(()) => JsValue::UNDEFINED,
            Err(e) => e.message.into(),
        })
    })
}

/// The outcome of an injection from what [`start`]'s promise settled with (it resolves the
/// failure message, or undefined once loaded).
pub fn outcome(r: Result<JsValue, JsValue>) -> Result<(), DeliveryError> {
    match r.unwrap_or_else(|e| e).as_string() {
        Some(m) => Err(DeliveryError::new(ErrorKind::ScriptLoad, m)),
        None => Ok(()),
    }
}

/// The failure of a load that consent revocation (or unloading) stopped.
pub fn revoked() -> DeliveryError {
    DeliveryError::new(ErrorKind::ScriptLoad, "consent revoked while loading")
}

/// Scripts being injected one after the other (each once the one before has loaded).
pub struct Injecting {
    /// The scripts (shared with the destination that keeps them for revocation).
    pub list: Rc<Vec<ScriptDescriptor>>,
    /// The first one to inject.
    pub next: usize,
    /// Who injects them (the destination's id; see [`load`]).
    pub owner: Rc<str>,
    /// `config.nonce`.
    pub nonce: Option<Rc<str>>,
    /// `loading.timeoutMs`.
    pub timeout_ms: u64,
    /// The destination's generation, bumped when the load is no longer wanted (revocation,
    /// unloading); checked before each script.
    pub generation: Rc<Cell<u32>>,
    /// The generation the load started in.
    pub started: u32,
    /// Called once all have loaded, at the first failure, or with [`revoked`] once the
    /// generation changed.
    pub done: Done,
}

impl Injecting {
    /// Injects the scripts in order on a `spawn_local` task, then calls `done`.
    pub fn run(self) {
        let Injecting {
            list,
            next,
            owner,
            nonce,
            timeout_ms,
            generation,
            started,
            done,
        } = self;
        spawn_local(async move {
            for d in list.iter().skip(next) {
                if generation.get() != started {
                    return done(Err(revoked()));
                }
                if let Err(e) = load(d, &owner, nonce.as_deref(), timeout_ms).await {
                    return done(Err(e));
                }
            }
            done(Ok(()))
        });
    }
}

/// Removes the elements of these descriptors that do not persist after revocation. Their load
/// records stay: the code they ran is still in the page, so they are never injected twice.
/// Elements this library did not inject (the page's own, with the same id) are left alone, and
/// so are those another owner still uses (two destinations may share a script).
pub fn remove_revoked(owner: &str, scripts: &[ScriptDescriptor]) {
    for d in scripts {
        if !d.persist_after_revoke {
            drop_script(owner, &d.id, false);
        }
    }
}

/// Removes these descriptors' elements and forgets them, so a later load injects them again
/// (`unloadDestination`); those another owner still uses stay.
pub fn remove_all(owner: &str, scripts: &[ScriptDescriptor]) {
    for d in scripts {
        drop_script(owner, &d.id, true);
    }
}

/// What the page knows about one script id.
struct Record {
    /// The element id.
    id: String,
    /// The owners using it (destination ids; `""` for remote scripts): the element goes only
    /// when the last of them drops it.
    users: Vec<String>,
    /// An unload asked to forget the script once its last owner drops it, so that a later load
    /// injects it again.
    forget: bool,
    /// The element this library injected and its load; `None` when none was injected (the
    /// page's own element, or a load that failed).
    injected: Option<Injected>,
}

/// An element this library injected.
struct Injected {
    element: HtmlScriptElement,
    /// Its load, shared by everyone waiting for it; once it ended in `Ok`, the script has run.
    flight: Rc<Flight>,
}

/// The script records of the page: a few per destination, so a list searched by id.
#[derive(Default)]
struct Records(Vec<Record>);

impl Records {
    fn get_mut(&mut self, id: &str) -> Option<&mut Record> {
        self.0.iter_mut().find(|r| r.id == id)
    }

    /// The record of `id`, added if there is none.
    fn entry(&mut self, id: &str) -> &mut Record {
        match self.0.iter().position(|r| r.id == id) {
            Some(i) => &mut self.0[i],
            None => {
                self.0.push(Record {
                    id: id.to_owned(),
                    users: Vec::new(),
                    forget: false,
                    injected: None,
                });
                let last = self.0.len() - 1;
                &mut self.0[last]
            }
        }
    }

    fn remove(&mut self, id: &str) {
        self.0.retain(|r| r.id != id);
    }
}

thread_local! {
    /// The script records of the page.
    static RECORDS: RefCell<Records> = RefCell::default();
}

/// `owner` no longer uses the script with this id: once no owner does, removes the element this
/// library injected (none when the page owns it). `forget` (an unload): also forgets it, so a
/// later [`load`] injects it again, when the last owner drops it if others still use it.
fn drop_script(owner: &str, id: &str, forget: bool) {
    let element = RECORDS.with_borrow_mut(|records| {
        let record = records.get_mut(id)?;
        record.users.retain(|u| u != owner);
        record.forget |= forget;
        if !record.users.is_empty() {
            return None;
        }
        let element = record.injected.as_ref().map(|i| i.element.clone());
        if record.forget {
            records.remove(id);
        }
        element
    });
    if let Some(element) = element {
        element.remove();
    }
}

/// Why a script did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Why {
    /// The URL policy refused its `src` (the policy's whole message).
    Policy(String),
    /// Its `error` event fired (unreachable, an HTTP error, a wrong SRI hash).
    FailedToLoad,
    /// Neither event fired within `loading.timeoutMs`.
    TimedOut,
    /// The page's Content Security Policy blocked the inline script.
    BlockedByCsp,
    /// Another element of the page has its id (described as `<div>`).
    Clash(String),
    /// The browser refused a DOM call (its exception's message).
    Refused(String),
}

impl Why {
    /// The `script_load` failure of `d`: `script <id> <why>: <src or 'inline'>`.
    fn error(&self, d: &ScriptDescriptor) -> DeliveryError {
        let shown = match &d.source {
            Source::Src(s) => s.as_str(),
            Source::Text(_) => "inline",
        };
        let id = d.id.as_str();
        let message = match self {
            Why::Policy(m) => m.clone(),
            Why::FailedToLoad => ["script ", id, " failed to load: ", shown].concat(),
            Why::TimedOut => ["script ", id, " timed out: ", shown].concat(),
            Why::BlockedByCsp => [
                "script ",
                id,
                " was blocked by the Content Security Policy: ",
                shown,
            ]
            .concat(),
            Why::Clash(other) => [
                "script ",
                id,
                " not injected: ",
                other,
                " already in the page has this id: ",
                shown,
            ]
            .concat(),
            Why::Refused(m) => [
                "script ",
                id,
                " failed: script injection refused: ",
                m,
                ": ",
                shown,
            ]
            .concat(),
        };
        DeliveryError::new(ErrorKind::ScriptLoad, message)
    }
}

/// The message of a value the browser threw (a `DOMException` is an `Error`).
fn refusal(e: JsValue) -> Why {
    let message = match e.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.message()),
        None => e.as_string().unwrap_or_else(|| "unknown error".into()),
    };
    Why::Refused(message)
}

/// Registers `owner` as a user of `d` and starts its load: `None` when a copy the page put
/// there counts as loaded, else the load to wait for (which may have ended already).
fn begin(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
) -> Result<Option<Rc<Flight>>, Why> {
    let known = RECORDS.with_borrow_mut(|records| {
        let record = records.entry(&d.id);
        if !record.users.iter().any(|u| u == owner) {
            record.users.push(owner.into());
        }
        // Used again: an unload's request to forget it no longer applies.
        record.forget = false;
        record.injected.as_ref().map(|i| i.flight.clone())
    });
    if let Some(flight) = known {
        return Ok(Some(flight));
    }
    let src = match &d.source {
        Source::Src(s) => Some(resolve_and_check(s).map_err(Why::Policy)?),
        Source::Text(_) => None,
    };
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| Why::Refused("no document".into()))?;
    match document.get_element_by_id(&d.id) {
        Some(el) => adopt(&document, &el, d, src.as_deref()),
        None => insert(&document, d, default_nonce, src.as_deref()),
    }
}

/// Creates the element of `d` (`src`: its resolved URL, already checked), records it and
/// appends it; returns its load.
fn insert(
    document: &Document,
    d: &ScriptDescriptor,
    default_nonce: Option<&str>,
    src: Option<&str>,
) -> Result<Option<Rc<Flight>>, Why> {
    let element: HtmlScriptElement = document
        .create_element("script")
        .map_err(refusal)?
        .dyn_into()
        .map_err(|_| Why::Refused("not a script element".into()))?;
    element.set_id(&d.id);
    let fixed = [
        ("nonce", d.nonce.as_deref().or(default_nonce)),
        ("integrity", d.integrity.as_deref()),
        ("crossorigin", d.cross_origin.as_deref()),
    ];
    let fixed = fixed.into_iter().filter_map(|(k, v)| Some((k, v?)));
    let extra = d.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (k, v) in fixed.chain(extra) {
        element.set_attribute(k, v).map_err(refusal)?;
    }
    let parent: Node = match d.target {
        Target::Head => document.head().map(Node::from),
        Target::Body => document.body().map(Node::from),
    }
    .or_else(|| document.document_element().map(Node::from))
    .ok_or_else(|| Why::Refused("the document has no element to append to".into()))?;
    let flight = Rc::new(Flight::default());
    // Recorded before it is appended: every later load of this id shares it from now on.
    RECORDS.with_borrow_mut(|records| {
        records.entry(&d.id).injected = Some(Injected {
            element: element.clone(),
            flight: flight.clone(),
        });
    });
    let watched = match (&d.source, src) {
        (Source::Text(text), _) => element
            .set_text(text)
            .and_then(|()| watch_inline(document, &element, &flight, &d.id, text)),
        (Source::Src(_), Some(src)) => {
            element.set_async(d.is_async);
            element.set_defer(d.defer);
            element.set_src(src);
            watch_src(&element, &flight, &d.id)
        }
        (Source::Src(_), None) => Err("no URL".into()),
    };
    if let Err(e) = watched.and_then(|()| parent.append_child(&element).map(drop)) {
        let why = refusal(e);
        discard(&d.id, &element, &flight);
        flight.settle(Err(why.clone()));
        return Err(why);
    }
    Ok(Some(flight))
}

/// Removes the element this library injected for `id` after its load failed, and forgets it
/// (if `flight` is still its load), so that a later load injects it again.
fn discard(id: &str, element: &HtmlScriptElement, flight: &Rc<Flight>) {
    element.remove();
    RECORDS.with_borrow_mut(|records| {
        if let Some(record) = records.get_mut(id) {
            if record
                .injected
                .as_ref()
                .is_some_and(|i| Rc::ptr_eq(&i.flight, flight))
            {
                record.injected = None;
            }
        }
    });
}

/// Ends `flight`, the load of the external script `element` injected for `id`, on its `load`
/// or `error` event; a failed element is [`discard`]ed.
fn watch_src(element: &HtmlScriptElement, flight: &Rc<Flight>, id: &str) -> Result<(), JsValue> {
    let (el, id, weak) = (element.clone(), id.to_owned(), Rc::downgrade(flight));
    Flight::listen(flight, element, None, move || {
        if let Some(flight) = weak.upgrade() {
            discard(&id, &el, &flight);
        }
    })
}

/// Ends `flight`, the load of the inline script `element` injected for `id`: an inline script
/// runs as it is appended, unless the page's Content Security Policy blocks it. The browser
/// tells that with a `securitypolicyviolation` event (`blocked-uri` `inline`, at the element or
/// naming the start of its text) in a task it queues at once, so the load ends with the first
/// task after the append: blocked (and [`discard`]ed) if that event came, else loaded.
fn watch_inline(
    document: &Document,
    element: &HtmlScriptElement,
    flight: &Rc<Flight>,
    id: &str,
    text: &str,
) -> Result<(), JsValue> {
    let (el, id, text) = (element.clone(), id.to_owned(), text.to_owned());
    let weak = Rc::downgrade(flight);
    let violations = Listener::new(document, "securitypolicyviolation", move |e: Event| {
        let Some(v) = e.dyn_ref::<SecurityPolicyViolationEvent>() else {
            return;
        };
        let sample = v.sample();
        let target: &JsValue = el.as_ref();
        let ours = e.target().is_some_and(|t| JsValue::from(t) == *target)
            || (!sample.is_empty() && text.starts_with(&sample));
        if let Some(flight) = weak
            .upgrade()
            .filter(|_| ours && v.blocked_uri() == "inline")
        {
            discard(&id, &el, &flight);
            flight.settle(Err(Why::BlockedByCsp));
        }
    })?;
    flight.listeners.borrow_mut().push(violations);
    let flight = flight.clone();
    spawn_local(async move {
        TimeoutFuture::new(0).await;
        flight.settle(Ok(()));
    });
    Ok(())
}

/// Counts the element with `d`'s id that the page already has (see the module's doc): `None`
/// when it is that script and has loaded, its load while the document still loads, or a clash.
fn adopt(
    document: &Document,
    el: &Element,
    d: &ScriptDescriptor,
    src: Option<&str>,
) -> Result<Option<Rc<Flight>>, Why> {
    let script = el.dyn_ref::<HtmlScriptElement>();
    let same = script.is_some_and(|s| match (&d.source, src) {
        (Source::Src(_), Some(src)) => s.src() == src,
        (Source::Text(text), _) => !s.has_attribute("src") && s.text().is_ok_and(|t| t == *text),
        (Source::Src(_), None) => false,
    });
    let Some(script) = script.filter(|_| same) else {
        return Err(Why::Clash(describe(el)));
    };
    if src.is_none() || document.ready_state() == "complete" {
        return Ok(None);
    }
    let window = web_sys::window().ok_or_else(|| Why::Refused("no window".into()))?;
    Flight::watch(script, Some(&window), || {})
        .map(Some)
        .map_err(refusal)
}

/// `el` as a failure message shows it: `<div>`, `<script src="https://...">`, `<script>`.
fn describe(el: &Element) -> String {
    let tag = el.tag_name().to_ascii_lowercase();
    match el.get_attribute("src").filter(|_| tag == "script") {
        Some(_) => {
            let src = el
                .dyn_ref::<HtmlScriptElement>()
                .map(HtmlScriptElement::src)
                .unwrap_or_default();
            ["<script src=\"", &src, "\">"].concat()
        }
        None => ["<", &tag, ">"].concat(),
    }
}

/// The load of one script element, shared by everyone waiting for it.
#[derive(Default)]
struct Flight {
    /// How it ended, once it has.
    outcome: RefCell<Option<Result<(), Why>>>,
    /// The tasks waiting for it.
    wakers: RefCell<Vec<Waker>>,
    /// Its event listeners, removed once it has ended.
    listeners: RefCell<Vec<Listener>>,
}

impl Flight {
    /// The load of `element` (a page's own script): its `load` or `error` event, or `also`'s
    /// `load` (the window's) if that comes first.
    fn watch(
        element: &EventTarget,
        also: Option<&EventTarget>,
        on_error: impl Fn() + 'static,
    ) -> Result<Rc<Flight>, JsValue> {
        let flight = Rc::new(Flight::default());
        Flight::listen(&flight, element, also, on_error)?;
        Ok(flight)
    }

    /// Adds the listeners that end `flight`; `on_error` runs first when the element's `error`
    /// event ends it.
    fn listen(
        flight: &Rc<Flight>,
        element: &EventTarget,
        also: Option<&EventTarget>,
        on_error: impl Fn() + 'static,
    ) -> Result<(), JsValue> {
        let loaded = |flight: &Rc<Flight>| {
            let flight = flight.clone();
            move |_: Event| flight.settle(Ok(()))
        };
        let failed = {
            let flight = flight.clone();
            move |_: Event| {
                if flight.outcome.borrow().is_none() {
                    on_error();
                    flight.settle(Err(Why::FailedToLoad));
                }
            }
        };
        let mut listeners = vec![
            Listener::new(element, "load", loaded(flight))?,
            Listener::new(element, "error", failed)?,
        ];
        if let Some(also) = also {
            listeners.push(Listener::new(also, "load", loaded(flight))?);
        }
        *flight.listeners.borrow_mut() = listeners;
        Ok(())
    }

    /// Ends the load with `outcome` (the first call wins) and wakes who waits for it.
    fn settle(&self, outcome: Result<(), Why>) {
        if self.outcome.borrow().is_some() {
            return;
        }
        *self.outcome.borrow_mut() = Some(outcome);
        // One of the listeners is running: they are dropped once it has returned.
        let listeners = self.listeners.take();
        spawn_local(async move { drop(listeners) });
        for waker in self.wakers.take() {
            waker.wake();
        }
    }

    /// Its outcome once it has ended; else registers the task to wake.
    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<(), Why>> {
        if let Some(outcome) = &*self.outcome.borrow() {
            return Poll::Ready(outcome.clone());
        }
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One caller waiting for a [`Flight`] within its own timeout (gloo-timers): the load goes on
/// when the caller gives up, so a retry waits on the same element instead of running it twice.
struct Wait {
    flight: Rc<Flight>,
    timer: TimeoutFuture,
}

impl Wait {
    fn new(flight: Rc<Flight>, timeout_ms: u64) -> Self {
        let ms = timeout_ms.min(i32::MAX as u64) as u32;
        Wait {
            flight,
            timer: TimeoutFuture::new(ms),
        }
    }
}

impl Future for Wait {
    type Output = Result<(), Why>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(outcome) = self.flight.poll_outcome(cx) {
            return Poll::Ready(outcome);
        }
        Pin::new(&mut self.timer)
            .poll(cx)
            .map(|()| Err(Why::TimedOut))
    }
}

/// An event listener, removed when dropped.
struct Listener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl Listener {
    /// Adds `f` as the `kind` listener of `target`.
    fn new(
        target: &EventTarget,
        kind: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> Result<Listener, JsValue> {
        let callback = Closure::<dyn FnMut(Event)>::new(f);
        target.add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref())?;
        Ok(Listener {
            target: target.clone(),
            kind,
            callback,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let callback = self.callback.as_ref().unchecked_ref();
        // Removing a listener does not throw.
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, callback);
    }
}
