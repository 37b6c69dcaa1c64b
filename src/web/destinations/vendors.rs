//! The built-in vendor tags: `posthog`, `meta-pixel`, `ga4` and `gtm` (SPEC section 7).
//!
//! Loading one sets up the vendor's standard queue stub (`window.posthog`, `window.fbq`,
//! `window.dataLayer` + `window.gtag`), queues its init calls into the stub (for Google tags the
//! Consent Mode `default` first), then injects the vendor script by `src` through the script
//! injector, so `config.nonce` and the URL policy apply; the vendor script replays what the stub
//! queued. Events are then mapped to vendor calls:
//!
//! | event | posthog | meta-pixel | ga4 | gtm |
//! |---|---|---|---|---|
//! | track | `capture(event, props)` | `fbq('track'` or `'trackCustom', event, props)` | `gtag('event', event, props)` | `dataLayer.push({event, ...props})` |
//! | page | `capture('$pageview', props)` | `fbq('track', 'PageView')` | `gtag('event', 'page_view', {page_location, page_path, page_title})` | `dataLayer.push({event: 'page_view', ...props})` |
//! | identify | `identify(userId, traits)` | — | `gtag('set', {user_id})` | — |
//! | group | `group('company', groupId, traits)` | — | — | — |
//! | alias | `alias(userId)` | — | — | — |
//! | consent | `opt_in_capturing()` / `opt_out_capturing()` | `fbq('consent', 'grant' / 'revoke')` | `gtag('consent', 'update', …)` | `gtag('consent', 'update', …)` |
//!
//! PostHog groups are sent with the group type `company` (the usual B2B type; PostHog allows
//! several types, Segment's `group` has one). An identify without a `userId` is not sent to
//! PostHog or GA4 (both need an id). Consent is told to the vendor only when what it follows
//! changed (PostHog: `measurement`, Meta: `marketing`, Google tags: any purpose), because
//! PostHog records every `opt_in_capturing()` as an event. Page views come only from `page()`
//! events: PostHog is initialised with `capture_pageview: false` and GA4 configured with
//! `send_page_view: false`, so a page view is never counted twice.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::rc::Rc;
use core::cell::Cell;

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use crate::consent::{Purpose, Purposes};
use crate::error::{DeliveryError, ErrorKind};
use crate::event::EventKind;
use crate::script::ScriptDescriptor;
use crate::vendor_map::{consent_mode, is_meta_standard, Vendor, POSTHOG_API_HOST};
use crate::web::config::DestConfig;
use crate::web::dest::{Destination, Event, Fut, LoadEnv};
use crate::web::inject::{inject, remove_all, remove_revoked, resolve_and_check};
use crate::web::js::{check_keys, get, opt_str, set};
use crate::web::platform::error_message;

#[wasm_bindgen(module = "/src/web/destinations/vendors.js")]
extern "C" {
    /// Sets up the stub of vendor `v` (0 PostHog, 1 Meta, 2 Google) unless it already exists.
    #[wasm_bindgen(catch)]
    fn stub(v: u8) -> Result<(), JsValue>;
    /// `window[t][m](...a)`, or `window[t](...a)` when `m` is empty.
    #[wasm_bindgen(catch)]
    fn vcall(t: &str, m: &str, a: &Array) -> Result<JsValue, JsValue>;
    /// Maps one event to vendor `v`'s call (0 PostHog, 1 Meta, 2 GA4, 3 GTM); returns
    /// `[function name, thrown value]` when the vendor function threw.
    #[wasm_bindgen(js_name = vendorSend)]
    fn vendor_send(v: u8, kind: &str, e: &JsValue, standard: bool) -> Option<Array>;
}

/// A vendor tag destination.
pub struct VendorDestination {
    vendor: Vendor,
    /// apiKey, pixelId, measurementId or containerId.
    account: String,
    /// PostHog's `apiHost`.
    api_host: String,
    script: ScriptDescriptor,
    /// The consent last told to the vendor; `None` until the init calls are queued.
    told: Cell<Option<Purposes>>,
}

/// Creates the destination for `entry`, validating its settings; errors name the field
/// (`config.destinations[0].settings.pixelId`).
pub fn create(entry: &DestConfig) -> Result<Rc<dyn Destination>, String> {
    let vendor = Vendor::from_kind(&entry.kind)
        .ok_or_else(|| [&entry.path, ": not a vendor type: ", &entry.kind].concat())?;
    let path = [&entry.path, ".settings"].concat();
    let st = &entry.settings;
    check_keys(st, vendor.settings_keys(), &path)?;
    let key = vendor.id_key();
    let field = || [&path, ".", key].concat();
    let account = opt_str(st, key, &path)?.ok_or_else(|| [&field(), " is required"].concat())?;
    vendor
        .check_id(&account)
        .map_err(|what| [&field(), " must be ", what, ": ", &account].concat())?;
    let api_host = match vendor {
        Vendor::PostHog => match opt_str(st, "apiHost", &path)? {
            Some(h) if h.trim().is_empty() => {
                return Err([&path, ".apiHost must be a non-empty URL"].concat())
            }
            Some(h) => h,
            None => POSTHOG_API_HOST.into(),
        },
        _ => String::new(),
    };
    let src = match opt_str(st, "scriptSrc", &path)? {
        Some(src) => {
            resolve_and_check(&src).map_err(|m| [&path, ".scriptSrc: ", &m].concat())?;
            src
        }
        None => vendor.default_script(&account, &api_host),
    };
    let script = ScriptDescriptor::src(&["consent-analytics-", &entry.id].concat(), &src);
    Ok(Rc::new(VendorDestination {
        vendor,
        account,
        api_host,
        script,
        told: Cell::new(None),
    }))
}

/// A delivery failure: the vendor function threw.
fn threw(what: &str, e: &JsValue) -> DeliveryError {
    DeliveryError::new(
        ErrorKind::Unknown,
        [what, " threw: ", &error_message(e)].concat(),
    )
}

/// Calls `window[target][method](...args)` (`window[target](...args)` when `method` is empty).
fn call(target: &str, method: &str, args: &[JsValue]) -> Result<(), DeliveryError> {
    let a: Array = args.iter().collect();
    vcall(target, method, &a)
        .map(|_| ())
        .map_err(|e| threw(if method.is_empty() { target } else { method }, &e))
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

/// `{ analytics_storage: 'granted', ... }` for the granted purposes.
fn consent_mode_object(p: Purposes) -> JsValue {
    let o = Object::new();
    for (k, v) in consent_mode(p) {
        set(&o, k, &s(v));
    }
    o.into()
}

impl VendorDestination {
    /// Queues the vendor's init calls into its stub, for consent `c`.
    fn init(&self, c: Purposes) -> Result<(), DeliveryError> {
        let id = s(&self.account);
        match self.vendor {
            Vendor::PostHog => {
                let cfg = Object::new();
                set(&cfg, "api_host", &s(&self.api_host));
                set(&cfg, "capture_pageview", &JsValue::FALSE);
                if !c.has(Purpose::Measurement) {
                    set(&cfg, "opt_out_capturing_by_default", &JsValue::TRUE);
                }
                call("posthog", "init", &[id, cfg.into()])
            }
            Vendor::MetaPixel => {
                if !c.has(Purpose::Marketing) {
                    call("fbq", "", &[s("consent"), s("revoke")])?;
                }
                call("fbq", "", &[s("init"), id])
            }
            Vendor::Ga4 | Vendor::Gtm => {
                call(
                    "gtag",
                    "",
                    &[s("consent"), s("default"), consent_mode_object(c)],
                )?;
                if self.vendor == Vendor::Gtm {
                    let o = Object::new();
                    set(&o, "gtm.start", &JsValue::from_f64(js_sys::Date::now()));
                    set(&o, "event", &s("gtm.js"));
                    return call("dataLayer", "push", &[o.into()]);
                }
                call("gtag", "", &[s("js"), js_sys::Date::new_0().into()])?;
                let cfg = Object::new();
                set(&cfg, "send_page_view", &JsValue::FALSE);
                call("gtag", "", &[s("config"), id, cfg.into()])
            }
        }
    }

    /// Tells the vendor about the consent an event was captured under, if it changed.
    fn consent(&self, c: Purposes) -> Result<(), DeliveryError> {
        let before = self.told.get().unwrap_or(c);
        if !self.vendor.consent_changed(before, c) {
            return Ok(());
        }
        match self.vendor {
            Vendor::PostHog => {
                let m = if c.has(Purpose::Measurement) {
                    "opt_in_capturing"
                } else {
                    "opt_out_capturing"
                };
                call("posthog", m, &[])?
            }
            Vendor::MetaPixel => {
                let v = if c.has(Purpose::Marketing) {
                    "grant"
                } else {
                    "revoke"
                };
                call("fbq", "", &[s("consent"), s(v)])?
            }
            Vendor::Ga4 | Vendor::Gtm => call(
                "gtag",
                "",
                &[s("consent"), s("update"), consent_mode_object(c)],
            )?,
        }
        self.told.set(Some(c));
        Ok(())
    }

    /// Maps one event to the vendor's calls.
    fn send(&self, ev: &Event) -> Result<(), DeliveryError> {
        if ev.kind == EventKind::Consent {
            return self.consent(ev.consent);
        }
        let e = &ev.payload;
        let v = match self.vendor {
            Vendor::PostHog => 0,
            Vendor::MetaPixel => 1,
            Vendor::Ga4 => 2,
            Vendor::Gtm => 3,
        };
        let standard = ev.kind == EventKind::Track
            && get(e, "event")
                .as_string()
                .is_some_and(|n| is_meta_standard(&n));
        match vendor_send(v, ev.kind.name(), e, standard) {
            Some(f) => Err(threw(&f.get(0).as_string().unwrap_or_default(), &f.get(1))),
            None => Ok(()),
        }
    }
}

impl Destination for VendorDestination {
    fn load(self: Rc<Self>, env: LoadEnv) -> Fut<Result<(), DeliveryError>> {
        Box::pin(async move {
            // A retried load (the script failed) must not queue the init calls twice.
            if self.told.get().is_none() {
                let v = match self.vendor {
                    Vendor::PostHog => 0,
                    Vendor::MetaPixel => 1,
                    Vendor::Ga4 | Vendor::Gtm => 2,
                };
                stub(v).map_err(|e| threw("vendor stub", &e))?;
                self.init(env.consent)?;
                self.told.set(Some(env.consent));
            }
            inject(&self.script, env.nonce.as_deref(), env.timeout_ms).await
        })
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>) -> Fut<Result<(), DeliveryError>> {
        Box::pin(async move {
            for ev in &events {
                self.send(ev)?;
            }
            Ok(())
        })
    }

    fn revoke(&self) {
        remove_revoked(core::slice::from_ref(&self.script));
    }

    fn destroy(&self) {
        remove_all(core::slice::from_ref(&self.script));
        // A new load starts over with the init calls.
        self.told.set(None);
    }
}
