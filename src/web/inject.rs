//! Injects `<script>` elements from descriptors: URL policy first, then nonce, SRI, extra
//! attributes, id-based dedupe, and a promise that settles on `load`, `error` or the timeout.
//! The DOM work and the record of injected ids live in the `injectScript` / `dropScript`
//! helpers of `host.js`.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::dest::Done;
use super::platform::resolve_url;
use crate::error::{DeliveryError, ErrorKind};
use crate::script::{check_url, refused, ScriptDescriptor, Source, Target};
use crate::web::js::{check_keys, get, opt_bool, opt_str, wrong};
use wasm_bindgen_futures::{spawn_local, JsFuture};

const KEYS: &[&str] = &[
    "id",
    "src",
    "textContent",
    "async",
    "defer",
    "nonce",
    "integrity",
    "crossOrigin",
    "attributes",
    "target",
    "persistAfterConsentRevoked",
    "requiredConsent",
];

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

/// Reads a script descriptor from JavaScript; errors name the field under `path`. Only a
/// remote list's descriptors (`own_consent`) may carry a `requiredConsent`: a destination's
/// scripts follow the destination's, so one there is refused, never ignored.
pub fn parse_descriptor(
    v: &JsValue,
    path: &str,
    own_consent: bool,
) -> Result<ScriptDescriptor, String> {
    let Some(obj) = v.dyn_ref::<Object>() else {
        return Err([path, " must be a script descriptor object"].concat());
    };
    if !own_consent && !get(obj, "requiredConsent").is_undefined() {
        return Err([
            "unknown option ",
            path,
            ".requiredConsent (set requiredConsent on the destination)",
        ]
        .concat());
    }
    check_keys(obj, KEYS, path)?;
    match fields(obj) {
        Ok(d) => Ok(d),
        Err(m) => Err([path, &m].concat()),
    }
}

/// [`parse_descriptor`] after the key check; errors name the field after the path
/// (`.target must be 'head' or 'body'`).
fn fields(obj: &Object) -> Result<ScriptDescriptor, String> {
    let id = match opt_str(obj, "id", "")? {
        Some(s) if !s.is_empty() => s,
        _ => return Err(".id is required (a non-empty string)".into()),
    };
    let source = match (opt_str(obj, "src", "")?, opt_str(obj, "textContent", "")?) {
        (Some(s), None) => Source::Src(s),
        (None, Some(t)) => Source::Text(t),
        _ => return Err(" needs exactly one of src and textContent".into()),
    };
    let mut d = ScriptDescriptor::src(&id, "");
    d.source = source;
    d.is_async = opt_bool(obj, "async", "")?.unwrap_or(true);
    d.defer = opt_bool(obj, "defer", "")?.unwrap_or(false);
    d.nonce = opt_str(obj, "nonce", "")?;
    d.integrity = opt_str(obj, "integrity", "")?;
    d.cross_origin = opt_str(obj, "crossOrigin", "")?;
    d.persist_after_revoke = opt_bool(obj, "persistAfterConsentRevoked", "")?.unwrap_or(false);
    d.target = match opt_str(obj, "target", "")?.as_deref() {
        None | Some("head") => Target::Head,
        Some("body") => Target::Body,
        Some(_) => return Err(wrong("", "target", "'head' or 'body'")),
    };
    let attrs = crate::web::js::get(obj, "attributes");
    if !attrs.is_undefined() {
        let Some(a) = attrs.dyn_ref::<Object>() else {
            return Err(wrong("", "attributes", "an object of strings"));
        };
        let pairs = crate::web::js::entries(a, ".attributes")?;
        for i in 0..pairs.length() {
            let pair: Array = pairs.get(i).unchecked_into();
            let k = crate::web::js::key(&pair, 0);
            // What the descriptor's own fields set (and the URL policy checks) cannot come in
            // through `attributes`.
            if OWN.contains(&k.to_ascii_lowercase().as_str()) {
                return Err([
                    ".attributes.",
                    &k,
                    " is not allowed: use the descriptor's own field",
                ]
                .concat());
            }
            match pair.get(1).as_string() {
                Some(v) => d.attributes.push((k, v)),
                _ => return Err(".attributes values must be strings".into()),
            }
        }
    }
    if let Source::Src(src) = &d.source {
        if let Err(m) = resolve_and_check(src) {
            return Err([".src: ", &m].concat());
        }
    }
    Ok(d)
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
