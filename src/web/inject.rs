//! Injects `<script>` elements from descriptors: URL policy first, then nonce, SRI, extra
//! attributes, id-based dedupe, and a promise that settles on `load`, `error` or the timeout.

#[allow(unused_imports)]
use crate::prelude::*;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::platform::{resolve_url, Local};
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

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = hasElement)]
    fn has_element(id: &str) -> bool;
    #[wasm_bindgen(js_name = removeElement)]
    fn remove_element(id: &str);
    #[wasm_bindgen(js_name = injectScript)]
    fn inject_script(
        id: &str,
        src: Option<&str>,
        code: Option<&str>,
        is_async: bool,
        defer: bool,
        nonce: Option<&str>,
        integrity: Option<&str>,
        cross_origin: Option<&str>,
        attrs: &JsValue,
        body: bool,
        timeout_ms: f64,
    ) -> Promise;
}

/// Resolves `src` against the document and applies the URL policy.
pub fn resolve_and_check(src: &str) -> Result<String, String> {
    let (resolved, _, origin) =
        resolve_url(src).ok_or_else(|| ["script URL refused (not a valid URL): ", src].concat())?;
    check_url(&resolved, &origin)?;
    Ok(resolved)
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
    if has_element(&d.id) {
        return Ok(());
    }
    let (src, code) = match &d.source {
        Source::Src(src) => (Some(resolve_and_check(src).map_err(fail)?), None),
        Source::Text(t) => (None, Some(t.as_str())),
    };
    let attrs = js_sys::Array::new();
    for (k, v) in &d.attributes {
        attrs.push(&js_sys::Array::of2(&k.into(), &v.into()));
    }
    let promise = inject_script(
        &d.id,
        src.as_deref(),
        code,
        d.is_async,
        d.defer,
        d.nonce.as_deref().or(default_nonce),
        d.integrity.as_deref(),
        d.cross_origin.as_deref(),
        &attrs,
        matches!(d.target, Target::Body),
        timeout_ms.min(i32::MAX as u64) as f64,
    );
    LOADS.with(|l| l.borrow_mut().insert(d.id.clone(), promise.clone()));
    JsFuture::from(promise).await.map(|_| ()).map_err(|e| {
        // A failed script may be retried: forget it (the helper removed its element).
        LOADS.with(|l| l.borrow_mut().remove(&d.id));
        fail(err_text(&e, d))
    })
}

fn err_text(e: &JsValue, d: &ScriptDescriptor) -> String {
    let what = match e.as_string().as_deref() {
        Some("timeout") => "timed out".to_string(),
        Some("error") => "failed to load".to_string(),
        _ => ["failed: ", &super::platform::error_message(e)].concat(),
    };
    let src = match &d.source {
        Source::Src(s) => s.as_str(),
        Source::Text(_) => "inline",
    };
    ["script ", &d.id, " ", &what, ": ", src].concat()
}

/// Removes the elements of these descriptors that do not persist after revocation. Their load
/// records stay: the code they ran is still in the page, so they are never injected twice.
/// Elements this library did not inject (the page's own, with the same id) are left alone.
pub fn remove_revoked(scripts: &[ScriptDescriptor]) {
    for d in scripts.iter().filter(|d| !d.persist_after_revoke) {
        if LOADS.with(|l| l.borrow().contains_key(&d.id)) {
            remove_element(&d.id);
        }
    }
}

/// Removes these descriptors' elements and forgets them, so a later load injects them again
/// (`unloadDestination`).
pub fn remove_all(scripts: &[ScriptDescriptor]) {
    for d in scripts {
        if LOADS.with(|l| l.borrow_mut().remove(&d.id)).is_some() {
            remove_element(&d.id);
        }
    }
}
