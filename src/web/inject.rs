//! Injects `<script>` elements from descriptors: URL policy first, then nonce, SRI, extra
//! attributes, id-based dedupe, and a promise that settles on `load`, `error` or the timeout.

#[allow(unused_imports)]
use crate::prelude::*;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::platform::{global_get, Local};
use crate::error::{DeliveryError, ErrorKind};
use crate::script::{check_url, ScriptDescriptor, Source, Target};
use crate::web::js::{check_keys, opt_bool, opt_str};

/// Load promises of the scripts this library injected, by element id.
static LOADS: Local<Loads> = Local::new(Loads(Vec::new()));

/// A small map from element id to load promise (a few entries: a Vec is smaller than a hash map).
struct Loads(Vec<(String, Promise)>);

impl Loads {
    fn get(&self, id: &str) -> Option<&Promise> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, p)| p)
    }
    fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }
    fn insert(&mut self, id: String, p: Promise) {
        self.remove(&id);
        self.0.push((id, p));
    }
    fn remove(&mut self, id: &str) -> Option<Promise> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(i).1)
    }
}

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

/// Reads a script descriptor from JavaScript; errors name the field under `path`.
pub fn parse_descriptor(v: &JsValue, path: &str) -> Result<ScriptDescriptor, String> {
    let obj: &Object = v
        .dyn_ref()
        .ok_or_else(|| [path, " must be a script descriptor object"].concat())?;
    check_keys(obj, KEYS, path)?;
    let id = opt_str(obj, "id", path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| [path, ".id is required (a non-empty string)"].concat())?;
    let source = match (
        opt_str(obj, "src", path)?,
        opt_str(obj, "textContent", path)?,
    ) {
        (Some(s), None) => Source::Src(s),
        (None, Some(t)) => Source::Text(t),
        _ => return Err([path, " needs exactly one of src and textContent"].concat()),
    };
    let mut d = ScriptDescriptor::src(&id, "");
    d.source = source;
    d.is_async = opt_bool(obj, "async", path)?.unwrap_or(true);
    d.defer = opt_bool(obj, "defer", path)?.unwrap_or(false);
    d.nonce = opt_str(obj, "nonce", path)?;
    d.integrity = opt_str(obj, "integrity", path)?;
    d.cross_origin = opt_str(obj, "crossOrigin", path)?;
    d.persist_after_revoke = opt_bool(obj, "persistAfterConsentRevoked", path)?.unwrap_or(false);
    d.target = match opt_str(obj, "target", path)?.as_deref() {
        None | Some("head") => Target::Head,
        Some("body") => Target::Body,
        Some(_) => return Err([path, ".target must be 'head' or 'body'"].concat()),
    };
    let attrs = Reflect::get(obj, &"attributes".into()).unwrap_or(JsValue::UNDEFINED);
    if !attrs.is_undefined() {
        let a: &Object = attrs
            .dyn_ref()
            .ok_or_else(|| [path, ".attributes must be an object of strings"].concat())?;
        let list = crate::web::js::entries(a).map_err(|m| [path, ".attributes: ", &m].concat())?;
        for (k, v) in list {
            match v.as_string() {
                Some(v) => d.attributes.push((k, v)),
                _ => return Err([path, ".attributes values must be strings"].concat()),
            }
        }
    }
    if let Source::Src(src) = &d.source {
        resolve_and_check(src).map_err(|m| [path, ".src: ", &m].concat())?;
    }
    Ok(d)
}

/// Resolves `src` against the document and applies the URL policy.
pub fn resolve_and_check(src: &str) -> Result<String, String> {
    let base = document()
        .and_then(|d| d.base_uri().ok().flatten())
        .unwrap_or_default();
    let resolved = web_sys::Url::new_with_base(src, &base)
        .map(|u| u.href())
        .map_err(|_| ["script URL refused (not a valid URL): ", src].concat())?;
    let origin = Reflect::get(&global_get("location"), &"origin".into())
        .ok()
        .and_then(|o| o.as_string())
        .unwrap_or_default();
    check_url(&resolved, &origin)?;
    Ok(resolved)
}

fn document() -> Option<web_sys::Document> {
    global_get("document").dyn_into().ok()
}

/// Injects `d` (once per id) and waits for it to load. `default_nonce` is `config.nonce`.
pub async fn inject(
    d: &ScriptDescriptor,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> Result<(), DeliveryError> {
    let fail = |m: String| DeliveryError::new(ErrorKind::ScriptLoad, m);
    if let Some(p) = LOADS.with(|l| l.borrow().get(&d.id).cloned()) {
        return JsFuture::from(p)
            .await
            .map(|_| ())
            .map_err(|e| fail(err_text(&e, d)));
    }
    let doc = document().ok_or_else(|| fail("no document to inject scripts into".into()))?;
    if doc.get_element_by_id(&d.id).is_some() {
        return Ok(());
    }
    let el: web_sys::HtmlScriptElement = doc
        .create_element("script")
        .map_err(|_| fail("cannot create a script element".into()))?
        .unchecked_into();
    el.set_id(&d.id);
    let nonce = d.nonce.as_deref().or(default_nonce);
    if let Some(n) = nonce {
        let _ = el.set_attribute("nonce", n);
    }
    if let Some(i) = &d.integrity {
        el.set_integrity(i);
    }
    if let Some(c) = &d.cross_origin {
        el.set_cross_origin(Some(c));
    }
    for (k, v) in &d.attributes {
        let _ = el.set_attribute(k, v);
    }
    let parent: web_sys::Node = match d.target {
        Target::Body => doc.body().map(Into::into),
        Target::Head => doc.head().map(Into::into),
    }
    .or_else(|| doc.document_element().map(Into::into))
    .ok_or_else(|| fail("no element to inject scripts into".into()))?;
    match &d.source {
        Source::Text(t) => {
            el.set_text(t)
                .map_err(|_| fail("cannot set script text".into()))?;
            parent
                .append_child(&el)
                .map_err(|_| fail("script injection refused".into()))?;
            LOADS.with(|l| {
                l.borrow_mut()
                    .insert(d.id.clone(), Promise::resolve(&JsValue::TRUE))
            });
            Ok(())
        }
        Source::Src(src) => {
            let resolved = resolve_and_check(src).map_err(fail)?;
            el.set_async(d.is_async);
            el.set_defer(d.defer);
            el.set_src(&resolved);
            let el2 = el.clone();
            let (promise, res, rej) = super::engine::deferred();
            el2.set_onload(Some(&res));
            let rej2 = rej.clone();
            el2.set_onerror(Some(&rej));
            let timeout = Closure::once_into_js(move || {
                let _ = rej2.call1(&JsValue::NULL, &JsValue::from_str("timeout"));
            });
            let _ = web_sys::window().map(|w| {
                w.set_timeout_with_callback_and_timeout_and_arguments_0(
                    timeout.unchecked_ref(),
                    timeout_ms.min(i32::MAX as u64) as i32,
                )
            });
            LOADS.with(|l| l.borrow_mut().insert(d.id.clone(), promise.clone()));
            parent
                .append_child(&el)
                .map_err(|_| fail("script injection refused".into()))?;
            match JsFuture::from(promise).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // A failed script may be retried: forget it and remove its element.
                    LOADS.with(|l| l.borrow_mut().remove(&d.id));
                    el.remove();
                    Err(fail(err_text(&e, d)))
                }
            }
        }
    }
}

fn err_text(e: &JsValue, d: &ScriptDescriptor) -> String {
    let what = if e.as_string().as_deref() == Some("timeout") {
        "timed out"
    } else {
        "failed to load"
    };
    let src = match &d.source {
        Source::Src(s) => s.as_str(),
        Source::Text(_) => "inline",
    };
    ["script ", &d.id, " ", what, ": ", src].concat()
}

/// Removes the elements of these descriptors that do not persist after revocation. Their load
/// records stay: the code they ran is still in the page, so they are never injected twice.
/// Elements this library did not inject (the page's own, with the same id) are left alone.
pub fn remove_revoked(scripts: &[ScriptDescriptor]) {
    if let Some(doc) = document() {
        for d in scripts.iter().filter(|d| !d.persist_after_revoke) {
            if !LOADS.with(|l| l.borrow().contains_key(&d.id)) {
                continue;
            }
            if let Some(el) = doc.get_element_by_id(&d.id) {
                el.remove();
            }
        }
    }
}

/// Removes these descriptors' elements and forgets them, so a later load injects them again
/// (`unloadDestination`).
pub fn remove_all(scripts: &[ScriptDescriptor]) {
    if let Some(doc) = document() {
        for d in scripts {
            if LOADS.with(|l| l.borrow_mut().remove(&d.id)).is_none() {
                continue;
            }
            if let Some(el) = doc.get_element_by_id(&d.id) {
                el.remove();
            }
        }
    }
}
