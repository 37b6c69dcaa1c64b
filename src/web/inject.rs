//! Injects `<script>` elements from descriptors: URL policy first, then nonce, SRI, extra
//! attributes, id-based dedupe, and a promise that settles on `load`, `error` or the timeout.
//! The DOM work and the record of injected ids live in the `injectScript` / `dropScript`
//! helpers of `host.js`.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;

use super::dest::Done;
use super::platform::resolve_url;
use crate::error::{DeliveryError, ErrorKind};
use crate::script::{check_url, refused, ScriptDescriptor, Source, Target};
use crate::web::config::de::{from_value, PATH};
use crate::web::config::PurposeList;
use wasm_bindgen_futures::{spawn_local, JsFuture};

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

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = injectScript)]
    fn inject_script(
        owner: &str,
        id: &str,
        src: Option<&str>,
        source: &str,
        refused: Option<&str>,
        flags: u8,
        attrs: &Array,
        timeout_ms: f64,
    ) -> Promise;
    #[wasm_bindgen(js_name = dropScript)]
    fn drop_script(owner: &str, id: &str, forget: bool);
}

/// Resolves `src` against the document and applies the URL policy.
pub fn resolve_and_check(src: &str) -> Result<String, String> {
    let Some((resolved, _, origin)) = resolve_url(src) else {
        return Err(refused("not a valid URL", src));
    };
    check_url(&resolved, &origin)?;
    Ok(resolved)
}

/// Injects `d` (once per id: an element with this id already in the document, or one this
/// library injected, is not injected again), waits for it to load and calls `done` with the
/// outcome. `default_nonce` is `config.nonce`. A `src` the URL policy refuses fails without
/// injecting anything.
pub fn inject(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
    timeout_ms: u64,
    done: Done,
) {
    let p = JsFuture::from(start(d, owner, default_nonce, timeout_ms));
    spawn_local(async move { done(outcome(p.await)) });
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
    /// The next one to inject.
    pub next: usize,
    /// Who injects them (the destination's id; see [`start`]).
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
    /// Injects the next script, or ends.
    pub fn run(mut self) {
        let Some(d) = self.list.get(self.next) else {
            return (self.done)(Ok(()));
        };
        if self.generation.get() != self.started {
            return (self.done)(Err(revoked()));
        }
        let p = start(d, &self.owner, self.nonce.as_deref(), self.timeout_ms);
        self.next += 1;
        let p = JsFuture::from(p);
        spawn_local(async move {
            match outcome(p.await) {
                Ok(()) => self.run(),
                Err(e) => (self.done)(Err(e)),
            }
        });
    }
}

/// Starts [`inject`]: a promise of `undefined` once `d` has loaded, else of the failure message
/// (it never rejects).
/// `owner` (a destination's id, `""` for remote scripts) is recorded as a user of the script:
/// its element goes only when no owner uses it any more ([`remove_revoked`], [`remove_all`]).
pub fn start(
    d: &ScriptDescriptor,
    owner: &str,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> Promise {
    // For a `src`: the URL as resolved, or why the policy refuses it.
    let checked = match &d.source {
        Source::Src(s) => resolve_and_check(s),
        Source::Text(_) => Ok(String::new()),
    };
    let (src, source) = match &d.source {
        Source::Src(s) => (Some(s.as_str()), checked.as_deref().unwrap_or("")),
        Source::Text(t) => (None, t.as_str()),
    };
    // Attribute names and values, in the order they are set.
    let attrs = Array::new();
    let push = |k: &str, v: &str| {
        attrs.push(&k.into());
        attrs.push(&v.into());
    };
    let fixed = [
        ("nonce", d.nonce.as_deref().or(default_nonce)),
        ("integrity", d.integrity.as_deref()),
        ("crossorigin", d.cross_origin.as_deref()),
    ];
    for (k, v) in fixed {
        if let Some(v) = v {
            push(k, v);
        }
    }
    for (k, v) in &d.attributes {
        push(k, v);
    }
    inject_script(
        owner,
        &d.id,
        src,
        source,
        checked.as_ref().err().map(|m| m.as_str()),
        d.is_async as u8 | (d.defer as u8) << 1 | (matches!(d.target, Target::Body) as u8) << 2,
        &attrs,
        timeout_ms.min(i32::MAX as u64) as f64,
    )
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
