//! The built-in vendor tags: `posthog`, `meta-pixel`, `ga4` and `gtm` (SPEC section 7).
//!
//! Loading one sets up the vendor's standard queue stub (`window.posthog`, `window.fbq`,
//! `window.dataLayer` + `window.gtag`), queues its init calls into the stub (for Google tags the
//! Consent Mode `default` first), then injects the vendor script by `src` through the script
//! injector, so `config.nonce` and the URL policy apply; the vendor script replays what the stub
//! queued. Events are then mapped to vendor calls (the calls themselves are made by
//! `vendors.js`; what to tell and when is decided here and in `vendor_map`):
//!
//! | event | posthog | meta-pixel | ga4 | gtm |
//! |---|---|---|---|---|
//! | track | `capture(event, props)` | `fbq('track'` or `'trackCustom', event, props)` | `gtag('event', event, props)` | `dataLayer.push({event, ...props})` |
//! | page | `capture('$pageview', props)` | `fbq('track', 'PageView')` | `gtag('event', 'page_view', {...props, page_location, page_path, page_title, page_referrer})` | `dataLayer.push({event: 'page_view', ...props})` |
//! | identify | `identify(userId, traits)` | — | `gtag('set', {user_id})` | — |
//! | group | `group('company', groupId, traits)` | — | — | — |
//! | alias | `alias(userId)` | — | — | — |
//! | consent | `opt_in_capturing()` / `opt_out_capturing()` | `fbq('consent', 'grant' / 'revoke')` | `gtag('consent', 'update', …)` | `gtag('consent', 'update', …)` |
//! | `reset()` | `reset()` | — | `gtag('set', {user_id: null})` | — |
//!
//! PostHog groups are sent with the group type `company` (the usual B2B type; PostHog allows
//! several types, Segment's `group` has one). An identify without a `userId` is not sent to
//! PostHog or GA4 (both need an id). Consent is told to the vendor only when what it follows
//! changed (PostHog: `measurement`, Meta: `marketing`, Google tags: any purpose), because
//! PostHog records every `opt_in_capturing()` as an event. It is told at the moment of the
//! change, whatever the destination's state, once the stub holds the init calls: a script
//! still in flight when consent is revoked runs anyway (a browser does not cancel it when its
//! element is removed), and finds the revocation queued right after its init calls; a change
//! made while the tag was not loaded reaches it before the next load. Page views come only from `page()`
//! events: PostHog is initialised with `capture_pageview: false` and GA4 configured with
//! `send_page_view: false`, so a page view is never counted twice.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Object;
use wasm_bindgen::prelude::*;

use crate::consent::Purposes;
use crate::error::{DeliveryError, ErrorKind};
use crate::event::EventKind;
use crate::script::ScriptDescriptor;
use crate::vendor_map::{consent_mode_bits, is_meta_standard, Vendor, POSTHOG_API_HOST};
use crate::web::config::de::from_value;
use crate::web::config::DestConfig;
use crate::web::dest::{Destination, Done, Event, LoadEnv};
use crate::web::inject::{inject, remove_all, remove_revoked, resolve_and_check};
use crate::web::js::get;

#[wasm_bindgen(module = "/src/web/destinations/vendors.js")]
extern "C" {
    /// Maps one event of type `kind` (see `kind`) to vendor `v`'s (0 PostHog, 1 Meta, 2 GA4,
    /// 3 GTM) calls; `flag`: for a track, a Meta standard event name, for a consent change,
    /// whether the vendor's switch purpose is granted (`on`); `cm`: the Consent Mode state
    /// (`consent_mode_bits`). Kind `INIT` sets up the stub and queues the init calls for
    /// account `e` (PostHog: at `host`) with `on` and `cm`. Returns the failure message
    /// (`'<function> threw: ...'`) when a vendor function threw.
    #[wasm_bindgen(js_name = vendorSend)]
    fn vendor_send(v: u8, kind: u8, e: &JsValue, flag: bool, cm: u8, host: &str) -> Option<String>;
}

/// A vendor tag destination.
pub struct VendorDestination {
    vendor: Vendor,
    /// apiKey, pixelId, measurementId or containerId.
    account: String,
    /// PostHog's `apiHost`.
    api_host: String,
    script: ScriptDescriptor,
    /// The owner of its script ([`crate::web::dest::CreateEnv::owner`]).
    owner: Rc<str>,
    /// The consent last told to the vendor; `None` until the init calls are queued.
    told: Cell<Option<Purposes>>,
    /// The consent in force as last reported by `consent_changed` (`None` before a change).
    current: Cell<Option<Purposes>>,
    /// Its `requiredConsent`: the vendor's own switch is on exactly while it is granted.
    required: Purposes,
}

/// Creates the destination of `vendor` for `entry`, validating its settings; errors name the
/// field (`config.destinations[0].settings.pixelId`).
pub fn create(
    entry: &DestConfig,
    vendor: Vendor,
    owner: Rc<str>,
) -> Result<Rc<dyn Destination>, String> {
    let path = entry.settings_path();
    let Settings {
        account,
        api_host,
        script_src,
    } = settings(vendor, &entry.settings, &path)?;
    let key = vendor.id_key();
    if let Err(what) = vendor.check_id(&account) {
        return Err([&path, ".", key, " must be ", what, ": ", &account].concat());
    }
    let api_host = match vendor {
        Vendor::PostHog => match api_host {
            // An ingestion host without its scheme would silently send nothing.
            Some(h) if !(h.starts_with("https://") || h.starts_with("http://")) => {
                return Err([&path, ".apiHost must be an http(s) URL: ", &h].concat())
            }
            Some(h) => h,
            None => POSTHOG_API_HOST.into(),
        },
        _ => String::new(),
    };
    let src = match script_src {
        Some(src) if src.trim().is_empty() => {
            return Err([&path, ".scriptSrc must be a non-empty URL"].concat())
        }
        Some(src) => {
            if let Err(m) = resolve_and_check(&src) {
                return Err([&path, ".scriptSrc: ", &m].concat());
            }
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
        owner,
        told: Cell::new(None),
        current: Cell::new(None),
        required: entry
            .required
            .unwrap_or_else(|| crate::web::registry::default_required(&entry.kind)),
    }))
}

/// What a vendor's `settings` say: its account id (apiKey, pixelId, measurementId or
/// containerId), PostHog's `apiHost`, and the `scriptSrc` override.
struct Settings {
    account: String,
    api_host: Option<String>,
    script_src: Option<String>,
}

/// `settings` of a `posthog` destination.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct PostHogSettings {
    api_key: String,
    api_host: Option<String>,
    script_src: Option<String>,
}

/// `settings` of a `meta-pixel` destination.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct MetaPixelSettings {
    pixel_id: String,
    script_src: Option<String>,
}

/// `settings` of a `ga4` destination.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct Ga4Settings {
    measurement_id: String,
    script_src: Option<String>,
}

/// `settings` of a `gtm` destination.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct GtmSettings {
    container_id: String,
    script_src: Option<String>,
}

/// Deserializes `vendor`'s settings `s` (at `path`).
fn settings(vendor: Vendor, s: &Object, path: &str) -> Result<Settings, String> {
    Ok(match vendor {
        Vendor::PostHog => {
            let s: PostHogSettings = from_value(s, path)?;
            Settings {
                account: s.api_key,
                api_host: s.api_host,
                script_src: s.script_src,
            }
        }
        Vendor::MetaPixel => {
            let s: MetaPixelSettings = from_value(s, path)?;
            Settings {
                account: s.pixel_id,
                api_host: None,
                script_src: s.script_src,
            }
        }
        Vendor::Ga4 => {
            let s: Ga4Settings = from_value(s, path)?;
            Settings {
                account: s.measurement_id,
                api_host: None,
                script_src: s.script_src,
            }
        }
        Vendor::Gtm => {
            let s: GtmSettings = from_value(s, path)?;
            Settings {
                account: s.container_id,
                api_host: None,
                script_src: s.script_src,
            }
        }
    })
}

/// An event type's number in `vendors.js`.
fn kind(k: EventKind) -> u8 {
    match k {
        EventKind::Track => 0,
        EventKind::Page => 1,
        EventKind::Identify => 2,
        EventKind::Group => 3,
        EventKind::Alias => 4,
        EventKind::Consent => 5,
    }
}

/// The `kind` of `vendorSend` that sets up the stub and queues the init calls.
const INIT: u8 = 6;

/// The `kind` of `vendorSend` that makes the vendor forget the user (`reset()`).
const RESET: u8 = 7;

/// A delivery failure: a vendor function threw (`message` says which and what).
fn failed(message: Option<String>) -> Result<(), DeliveryError> {
    match message {
        Some(m) => Err(DeliveryError::new(ErrorKind::Unknown, m)),
        None => Ok(()),
    }
}

impl VendorDestination {
    /// The vendor's number in `vendors.js`.
    fn code(&self) -> u8 {
        match self.vendor {
            Vendor::PostHog => 0,
            Vendor::MetaPixel => 1,
            Vendor::Ga4 => 2,
            Vendor::Gtm => 3,
        }
    }

    /// Whether the vendor's own switch is on under consent `c` (its requiredConsent granted).
    fn on(&self, c: Purposes) -> bool {
        self.vendor.has_switch() && c.covers(self.required)
    }

    /// Sets up the stub and queues the init calls, once per instance (a retried load, after the
    /// script failed, must not queue them twice).
    fn init(&self, c: Purposes) -> Result<(), DeliveryError> {
        if self.told.get().is_none() {
            failed(vendor_send(
                self.code(),
                INIT,
                &JsValue::from_str(&self.account),
                self.on(c),
                consent_mode_bits(c),
                &self.api_host,
            ))?;
            self.told.set(Some(c));
        }
        Ok(())
    }

    /// Tells the vendor consent `c` if its stub holds the init calls and what the vendor
    /// follows changed since it was last told.
    fn tell(&self, c: Purposes) -> Result<(), DeliveryError> {
        let Some(told) = self.told.get() else {
            return Ok(());
        };
        if !self.vendor.consent_changed(self.required, told, c) {
            return Ok(());
        }
        let (v, on, cm) = (self.code(), self.on(c), consent_mode_bits(c));
        failed(vendor_send(
            v,
            kind(EventKind::Consent),
            &Object::new(),
            on,
            cm,
            "",
        ))?;
        self.told.set(Some(c));
        Ok(())
    }

    /// Maps one event to the vendor's calls. A consent event tells the consent in force now
    /// (usually told already by `consent_changed`; this retries a telling that threw), never
    /// an older one queued behind it.
    fn send(&self, ev: &Event) -> Result<(), DeliveryError> {
        if ev.kind == EventKind::Consent {
            return self.tell(self.current.get().unwrap_or(ev.consent));
        }
        let e = &ev.payload;
        let flag = ev.kind == EventKind::Track
            && match get(e, "event").as_string() {
                Some(n) => is_meta_standard(&n),
                None => false,
            };
        let cm = consent_mode_bits(ev.consent);
        failed(vendor_send(self.code(), kind(ev.kind), e, flag, cm, ""))
    }
}

impl Destination for VendorDestination {
    fn load(self: Rc<Self>, env: LoadEnv, done: Done) {
        match self.init(env.consent) {
            Ok(()) => inject(
                &self.script,
                &self.owner,
                env.nonce.as_deref(),
                env.timeout_ms,
                done,
            ),
            Err(e) => done(Err(e)),
        }
    }

    fn deliver(self: Rc<Self>, events: Vec<Event>, done: Done) {
        done(events.iter().try_for_each(|ev| self.send(ev)))
    }

    fn revoke(&self) {
        remove_revoked(&self.owner, std::slice::from_ref(&self.script));
    }

    fn consent_changed(&self, granted: Purposes) {
        self.current.set(Some(granted));
        // A vendor function that throws here is told again by the `consent` event's delivery.
        let _ = self.tell(granted);
    }

    fn reset(&self) {
        // Only a vendor whose stub holds its init calls has an identity to forget; a failure
        // is the vendor's own and changes nothing here.
        if self.told.get().is_some() {
            let _ = vendor_send(self.code(), RESET, &Object::new(), false, 0, "");
        }
    }

    fn destroy(&self) {
        remove_all(&self.owner, std::slice::from_ref(&self.script));
        // A new load starts over with the init calls.
        self.told.set(None);
    }
}
