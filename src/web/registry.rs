//! The destination registry: type name -> factory. Built-in Rust types are always present;
//! JavaScript types are added with `Analytics.registerDestination(type, factory)`.

use crate::web::platform::Local;
use std::rc::Rc;

use js_sys::Function;

use super::config::DestConfig;
use super::dest::{CreateEnv, Destination, JsDestination};
use crate::consent::{Purpose, Purposes};
use crate::vendor_map::Vendor;

static JS_TYPES: Local<Vec<(String, Function)>> = Local::new(Vec::new());

/// The built-in type names; a JavaScript type may not take one of them.
pub const BUILT_IN: &[&str] = &["relay", "posthog", "meta-pixel", "ga4", "gtm", "script"];

/// Registers (or replaces) a JavaScript destination type.
pub fn register(kind: &str, factory: Function) -> Result<(), String> {
    if kind.is_empty() {
        return Err("registerDestination: type must be a non-empty string".into());
    }
    if BUILT_IN.contains(&kind) {
        return Err([
            "registerDestination: '",
            kind,
            "' is a built-in destination type",
        ]
        .concat());
    }
    JS_TYPES.with(|t| {
        let mut t = t.borrow_mut();
        for e in t.iter_mut() {
            if &*e.0 == kind {
                e.1 = factory;
                return;
            }
        }
        t.push((kind.into(), factory));
    });
    Ok(())
}

/// The default `requiredConsent` of a type.
pub fn default_required(kind: &str) -> Purposes {
    let p = match Vendor::from_kind(kind) {
        Some(Vendor::PostHog | Vendor::Ga4) => Purpose::Measurement,
        Some(Vendor::MetaPixel) => Purpose::Marketing,
        Some(Vendor::Gtm) => Purpose::Necessary,
        None => return Purposes::NONE,
    };
    Purposes::NONE.with(p, true)
}

/// Creates the instance for a config entry, validating its settings; errors name the entry.
pub fn create(entry: &DestConfig, env: &CreateEnv) -> Result<Rc<dyn Destination>, String> {
    if let Some(d) = super::destinations::create(entry, env)? {
        return Ok(d);
    }
    let factory = JS_TYPES.with(|t| {
        for (k, f) in t.borrow().iter() {
            if *k == entry.kind {
                return Some(f.clone());
            }
        }
        None
    });
    match factory {
        Some(f) => Ok(Rc::new(JsDestination::create(
            &f,
            &entry.id,
            &entry.settings,
            &entry.path,
            env.owner(&entry.id),
        )?)),
        None => Err([
            &entry.path,
            ": unknown destination type '",
            &entry.kind,
            "' (register it with Analytics.registerDestination first)",
        ]
        .concat()),
    }
}
