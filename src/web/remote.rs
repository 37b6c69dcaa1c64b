//! Remote scripts (`config.scriptsUrl`): after `Analytics.load` and each `setConsent`, asks
//! `GET <scriptsUrl>?consent=<JSON>` for `{ scripts: [descriptor + requiredConsent], metadata }`,
//! injects the scripts the consent allows and removes those it no longer allows. Responses are
//! cached per consent value in sessionStorage ([`crate::scripts_cache`]); a failed fetch or an
//! invalid body is logged and the last good copy is used. Nothing here can break tracking: it
//! runs from promise callbacks (the `remoteScripts` helper of `host.js`) and only logs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::config::required_consent;

use super::inject::{parse_descriptor, remove_revoked, start};
use super::js::{get, index, is_plain_object, list};
use super::platform::{log_error, WebClock};
use super::storage::WebStorage;
use crate::consent::Purposes;
use crate::script::ScriptDescriptor;
use crate::scripts_cache::{request_url, Lookup, ScriptsCache};

/// A script of the remote list with the purposes it requires.
type RemoteScript = (ScriptDescriptor, Purposes);

/// The remote scripts of one `Analytics` instance.
pub struct Remote {
    url: String,
    cache: ScriptsCache,
    nonce: Option<Rc<str>>,
    timeout_ms: u64,
    /// Scripts injected (or being injected) and still allowed.
    injected: RefCell<Vec<RemoteScript>>,
    /// Bumped by each refresh: an older refresh stops before applying its list.
    generation: Cell<u32>,
    /// The owner of its scripts for the injector (`CreateEnv::instance`).
    owner: String,
}

impl Remote {
    /// Remote scripts from `url`, cached for `ttl_ms` under `<prefix>:scripts:` in
    /// sessionStorage; injected with `nonce` (`config.nonce`) and `timeout_ms`, as `owner`.
    pub fn new(
        owner: String,
        url: String,
        ttl_ms: u64,
        prefix: &str,
        nonce: Option<Rc<str>>,
        timeout_ms: u64,
    ) -> Rc<Remote> {
        let cache = ScriptsCache::new(
            Rc::new(WebStorage::session()),
            Rc::new(WebClock),
            prefix,
            ttl_ms,
        );
        Rc::new(Remote {
            url,
            cache,
            nonce,
            timeout_ms,
            injected: RefCell::new(Vec::new()),
            generation: Cell::new(0),
            owner,
        })
    }

    /// Applies `consent`: removes at once the scripts it no longer allows, then (from the cache
    /// or the network) injects those it allows, one after the other.
    pub fn refresh(self: &Rc<Self>, consent: Purposes) {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let mut revoked = Vec::new();
        let mut injected = self.injected.borrow_mut();
        for (d, req) in std::mem::take(&mut *injected) {
            if consent.covers(req) {
                injected.push((d, req));
            } else {
                revoked.push(d);
            }
        }
        drop(injected);
        remove_revoked(&self.owner, &revoked);
        let cached = match self.cache.lookup(consent) {
            Lookup::Fresh(body) => parse_body(&body).ok(),
            Lookup::Stale(_) | Lookup::Missing => None,
        };
        let url = cached.is_none().then(|| request_url(&self.url, consent));
        let me = self.clone();
        let mut list = cached.map(Vec::into_iter);
        let fetched = url.clone().unwrap_or_default();
        // Called with `[answer to the GET]` (when not cached), then with `[outcome of each
        // injection]`; pushes onto that array the promise of the next one, if any.
        let step = move |a: JsValue| {
            let a: &Array = a.unchecked_ref();
            let got = a.get(0);
            let list = match &mut list {
                Some(list) => {
                    if let Some(m) = got.as_string() {
                        log_error(&["remote scripts: ", &m].concat());
                    }
                    list
                }
                None => match me.received(consent, &fetched, got) {
                    Some(l) => list.insert(l.into_iter()),
                    None => return,
                },
            };
            for (d, req) in list {
                if me.generation.get() != generation {
                    break; // A newer consent is being applied.
                }
                if !consent.covers(req) {
                    continue;
                }
                let p = start(&d, &me.owner, me.nonce.as_deref(), me.timeout_ms);
                let mut injected = me.injected.borrow_mut();
                if !injected.iter().any(|(x, _)| x.id == d.id) {
                    injected.push((d, req));
                }
                a.push(&p);
                return;
            }
        };
        let step = Closure::<dyn FnMut(JsValue)>::new(step).into_js_value();
        in_order(
            url.as_deref(),
            self.timeout_ms.min(i32::MAX as u64) as u32,
            &step,
        );
    }

    /// The list to apply from the answer `got` to `GET url` for `consent` (`[body text]` or the
    /// failure message): a valid body is cached; otherwise the failure is logged and the last
    /// good copy is used, if any.
    fn received(&self, consent: Purposes, url: &str, got: JsValue) -> Option<Vec<RemoteScript>> {
        let failure = if got.is_array() {
            let text = get(&got, "0").as_string().unwrap_or_default();
            match parse_body(&text) {
                Ok(list) => {
                    self.cache.store(consent, &text);
                    return Some(list);
                }
                Err(m) => ["GET ", url, ": invalid body: ", &m].concat(),
            }
        } else {
            got.as_string().unwrap_or_default()
        };
        let fallback = self.cache.fallback(consent);
        let kept = if fallback.is_some() {
            "; using the last good copy"
        } else {
            "; no earlier copy to use"
        };
        log_error(&["remote scripts: ", &failure, kept].concat());
        match fallback {
            Some(b) => parse_body(&b).ok(),
            None => None,
        }
    }
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = remoteScripts)]
    fn in_order(url: Option<&str>, ms: u32, step: &JsValue);
}

/// Validates a response body: `{ scripts: [descriptor + requiredConsent?], metadata? }`.
/// Every descriptor obeys the script URL policy, or the whole body is refused (with why).
pub fn parse_body(text: &str) -> Result<Vec<RemoteScript>, String> {
    let v = js_sys::JSON::parse(text).map_err(|_| "not JSON")?;
    if !is_plain_object(&v) {
        return Err("not an object".into());
    }
    let arr = list(&get(&v, "scripts"), "scripts", " must be an array")?;
    let mut out = Vec::new();
    for j in 0..arr.length() {
        let s = arr.get(j);
        let path = index("scripts", j);
        let d = parse_descriptor(&s, &path, true)?;
        let req = required_consent(&s, &path)?.unwrap_or(Purposes::NONE);
        out.push((d, req));
    }
    Ok(out)
}
