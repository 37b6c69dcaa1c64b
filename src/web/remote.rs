//! Remote scripts (`config.scriptsUrl`): after `Analytics.load` and each `setConsent`, asks
//! `GET <scriptsUrl>?consent=<JSON>` for `{ scripts: [descriptor + requiredConsent], metadata }`,
//! injects the scripts the consent allows and removes those it no longer allows or the list no
//! longer returns. Responses are cached per `scriptsUrl` and consent value in sessionStorage
//! ([`crate::scripts_cache`]); a failed fetch or an invalid body is logged and the last good
//! copy is used. Nothing here can break tracking: it runs on its own `spawn_local` task and
//! only logs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::config::required_consent;

use super::inject::{outcome, parse_descriptor, remove_revoked, start};
use super::js::{get, index, is_plain_object, list};
use super::net::get_text;
use super::platform::{log_error, resolve_url, WebClock};
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
            &resolve_url(&url).map_or_else(|| url.clone(), |(href, _, _)| href),
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
    /// or the network) the list for it: removes the scripts the list no longer returns and
    /// injects those it allows, one after the other.
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
        let me = self.clone();
        spawn_local(async move { me.apply(consent, generation).await });
    }

    /// Whether a newer [`Remote::refresh`] than `generation` started (this one then stops).
    fn superseded(&self, generation: u32) -> bool {
        self.generation.get() != generation
    }

    /// Gets the list for `consent` and applies it, unless a newer refresh started meanwhile.
    async fn apply(&self, consent: Purposes, generation: u32) {
        let cached = match self.cache.lookup(consent) {
            Lookup::Fresh(body) => parse_body(&body).ok(),
            Lookup::Stale(_) | Lookup::Missing => None,
        };
        let list = match cached {
            Some(list) => list,
            None => {
                let url = request_url(&self.url, consent);
                let got = get_text(&url, self.timeout_ms)
                    .await
                    .map_err(|e| ["GET ", &url, " ", &e.to_string()].concat());
                match self.received(consent, &url, got) {
                    Some(list) => list,
                    None => return,
                }
            }
        };
        if self.superseded(generation) {
            return;
        }
        self.remove_unlisted(&list);
        for (d, req) in list {
            if self.superseded(generation) {
                break; // A newer consent is being applied.
            }
            if !consent.covers(req) {
                continue;
            }
            let loading = start(&d, &self.owner, self.nonce.as_deref(), self.timeout_ms);
            {
                let mut injected = self.injected.borrow_mut();
                if !injected.iter().any(|(x, _)| x.id == d.id) {
                    injected.push((d, req));
                }
            }
            if let Err(e) = outcome(JsFuture::from(loading).await) {
                log_error(&["remote scripts: ", &e.message].concat());
            }
        }
    }

    /// Removes the injected scripts that `list` does not return (any more): a service that
    /// filters its list by the consent it is sent takes a script back by leaving it out.
    fn remove_unlisted(&self, list: &[RemoteScript]) {
        let mut gone = Vec::new();
        self.injected.borrow_mut().retain(|(d, _)| {
            let listed = list.iter().any(|(x, _)| x.id == d.id);
            if !listed {
                gone.push(d.clone());
            }
            listed
        });
        remove_revoked(&self.owner, &gone);
    }

    /// The list to apply from the answer `got` to `GET url` for `consent` (the body text or the
    /// failure message): a valid body is cached; otherwise the failure is logged and the last
    /// good copy is used, if any.
    fn received(
        &self,
        consent: Purposes,
        url: &str,
        got: Result<String, String>,
    ) -> Option<Vec<RemoteScript>> {
        let failure = match got {
            Ok(text) => match parse_body(&text) {
                Ok(list) => {
                    self.cache.store(consent, &text);
                    return Some(list);
                }
                Err(m) => ["GET ", url, ": invalid body: ", &m].concat(),
            },
            Err(m) => m,
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
