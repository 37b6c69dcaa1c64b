//! Reads and validates `Analytics.load(config)` (SPEC section 8). Every error names the field;
//! unknown keys are errors so a typo never silently disables a feature.

use js_sys::Object;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::js::{
    check_keys, get, index, is_plain_object, key, keys_at, list, opt_bool, opt_num, opt_obj,
    opt_str, opt_uint, wrong,
};
use crate::breaker::BreakerConfig;
use crate::consent::{Purpose, Purposes};
use crate::dead_letter::DeadLetterConfig;
use crate::manager::{ManagerConfig, Strategy};
use crate::retry::RetryPolicy;

/// One entry of `config.destinations`.
pub struct DestConfig {
    /// Its `type`.
    pub kind: String,
    /// Its id (defaults to the type).
    pub id: String,
    /// `requiredConsent`, if given (else the type's default).
    pub required: Option<Purposes>,
    /// `settings` (an empty object when absent).
    pub settings: Object,
    /// Where it sits in the config, for error messages (`destinations[2]`).
    pub path: String,
}

impl DestConfig {
    /// `<path>.settings`: where the settings sit, for error messages.
    pub fn settings_path(&self) -> String {
        [&self.path, ".settings"].concat()
    }
}

/// The validated configuration.
pub struct Config {
    /// Purposes granted by `config.consent`.
    pub consent: Purposes,
    /// `honorGpc`.
    pub honor_gpc: bool,
    /// Enabled destinations, in order.
    pub destinations: Vec<DestConfig>,
    /// `scriptsUrl`.
    pub scripts_url: Option<String>,
    /// `scriptsCacheTtlMs`.
    pub scripts_cache_ttl_ms: u64,
    /// `loading.timeoutMs`.
    pub timeout_ms: u64,
    /// Manager settings (`loading`, `retry`, `circuitBreaker`, `purgeOnRevoke`).
    pub manager: ManagerConfig,
    /// `deadLetter`.
    pub dead_letter: DeadLetterConfig,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `storagePrefix`.
    pub storage_prefix: String,
    /// `debug`.
    pub debug: bool,
}

const TOP: &[&str] = &[
    "consent",
    "honorGpc",
    "destinations",
    "scriptsUrl",
    "scriptsCacheTtlMs",
    "loading",
    "retry",
    "circuitBreaker",
    "deadLetter",
    "purgeOnRevoke",
    "nonce",
    "storagePrefix",
    "debug",
];

/// Parses a purposes object `{ measurement: true, ... }` into (purpose, granted) pairs.
pub fn parse_consent_object(v: &JsValue, path: &str) -> Result<Vec<(Purpose, bool)>, String> {
    if !is_plain_object(v) {
        return Err([path, " must be an object of purpose: boolean"].concat());
    }
    let obj: &Object = v.unchecked_ref();
    let mut out = Vec::new();
    let keys = keys_at(obj, path)?;
    for i in 0..keys.length() {
        let k = key(&keys, i);
        let Some(p) = Purpose::from_name(&k) else {
            return Err([
                "unknown consent purpose ",
                path,
                ".",
                &k,
                " (expected necessary, functionality, experience, measurement, marketing)",
            ]
            .concat());
        };
        let v = get(obj, &k);
        // An undefined value leaves the purpose as it is (a form's unset field).
        if v.is_undefined() {
            continue;
        }
        let Some(on) = v.as_bool() else {
            return Err(wrong(path, &k, "a boolean"));
        };
        out.push((p, on));
    }
    Ok(out)
}

/// The `requiredConsent` list of `obj` (at `path`), `None` when absent.
pub fn required_consent(obj: &JsValue, path: &str) -> Result<Option<Purposes>, String> {
    let v = get(obj, "requiredConsent");
    if v.is_undefined() {
        return Ok(None);
    }
    parse_purpose_list(&v, &[path, ".requiredConsent"].concat()).map(Some)
}

/// Parses a `requiredConsent` list.
pub fn parse_purpose_list(v: &JsValue, path: &str) -> Result<Purposes, String> {
    let mut set = Purposes::NONE;
    let list = list(v, path, " must be an array of purpose names")?;
    for i in 0..list.length() {
        let p = list.get(i);
        let name = p.as_string().unwrap_or_default();
        let Some(p) = Purpose::from_name(&name) else {
            return Err([&index(path, i), " is not a consent purpose: ", &name].concat());
        };
        set = set.with(p, true);
    }
    Ok(set)
}

/// The sub-object `config.<key>` (its path is `p`), checked against `keys`.
fn sub(obj: &Object, key: &str, p: &str, keys: &[&str]) -> Result<Option<Object>, String> {
    let o = opt_obj(obj, key, "config")?;
    if let Some(o) = &o {
        check_keys(o, keys, p)?;
    }
    Ok(o)
}

/// Validates `v` as the load config.
pub fn parse(v: &JsValue) -> Result<Config, String> {
    let obj: Object = if v.is_undefined() || v.is_null() {
        Object::new()
    } else if is_plain_object(v) {
        v.clone().unchecked_into()
    } else {
        return Err("config must be an object".into());
    };
    check_keys(&obj, TOP, "config")?;
    let mut consent = Purposes::NONE;
    let c = get(&obj, "consent");
    if !c.is_undefined() {
        for (p, on) in parse_consent_object(&c, "config.consent")? {
            consent = consent.with(p, on);
        }
    }
    let mut manager = ManagerConfig::default();
    let mut timeout_ms = 10_000;
    let p = "config.loading";
    if let Some(l) = sub(
        &obj,
        "loading",
        p,
        &["strategy", "bufferLimit", "maxRetries", "timeoutMs"],
    )? {
        manager.strategy = match opt_str(&l, "strategy", p)?.as_deref() {
            None | Some("lazy") => Strategy::Lazy,
            Some("eager") => Strategy::Eager,
            Some(_) => return Err(wrong(p, "strategy", "'lazy' or 'eager'")),
        };
        if let Some(n) = opt_uint(&l, "bufferLimit", p)? {
            manager.buffer_limit = n.max(1) as usize;
        }
        if let Some(n) = opt_uint(&l, "maxRetries", p)? {
            manager.load_max_retries = n.min(100) as u32;
        }
        if let Some(n) = opt_uint(&l, "timeoutMs", p)? {
            timeout_ms = n.max(1);
        }
    }
    let mut retry = RetryPolicy::default();
    let rk = &[
        "maxRetries",
        "baseDelayMs",
        "maxDelayMs",
        "multiplier",
        "jitter",
    ];
    let p = "config.retry";
    if let Some(r) = sub(&obj, "retry", p, rk)? {
        if let Some(n) = opt_uint(&r, "maxRetries", p)? {
            retry.max_retries = n.min(100) as u32;
        }
        if let Some(n) = opt_uint(&r, "baseDelayMs", p)? {
            retry.base_delay_ms = n;
        }
        if let Some(n) = opt_uint(&r, "maxDelayMs", p)? {
            retry.max_delay_ms = n;
        }
        if let Some(n) = opt_num(&r, "multiplier", p)? {
            retry.multiplier = n;
        }
        if let Some(b) = opt_bool(&r, "jitter", p)? {
            retry.jitter = b;
        }
    }
    manager.retry = retry;
    let mut breaker = BreakerConfig::default();
    let bk = &["failureThreshold", "recoveryTimeoutMs", "halfOpenSuccesses"];
    let p = "config.circuitBreaker";
    if let Some(b) = sub(&obj, "circuitBreaker", p, bk)? {
        if let Some(n) = opt_uint(&b, "failureThreshold", p)? {
            breaker.failure_threshold = n.clamp(1, u32::MAX as u64) as u32;
        }
        if let Some(n) = opt_uint(&b, "recoveryTimeoutMs", p)? {
            breaker.recovery_timeout_ms = n;
        }
        if let Some(n) = opt_uint(&b, "halfOpenSuccesses", p)? {
            breaker.half_open_successes = n.clamp(1, u32::MAX as u64) as u32;
        }
    }
    manager.breaker = breaker;
    let mut dead_letter = DeadLetterConfig::default();
    let p = "config.deadLetter";
    if let Some(d) = sub(&obj, "deadLetter", p, &["storageKey", "maxSize", "ttlMs"])? {
        if let Some(s) = opt_str(&d, "storageKey", p)? {
            dead_letter.storage_key = s;
        }
        if let Some(n) = opt_uint(&d, "maxSize", p)? {
            dead_letter.max_size = n as usize;
        }
        if let Some(n) = opt_uint(&d, "ttlMs", p)? {
            dead_letter.ttl_ms = n;
        }
    }
    manager.purge_on_revoke = opt_bool(&obj, "purgeOnRevoke", "config")?.unwrap_or(true);
    manager.durable_ttl_ms = dead_letter.ttl_ms;

    let mut destinations: Vec<DestConfig> = Vec::new();
    let dests = get(&obj, "destinations");
    if !dests.is_undefined() {
        let entries = list(&dests, "config.destinations", " must be an array")?;
        for i in 0..entries.length() {
            let entry = entries.get(i);
            let path = index("config.destinations", i);
            if !is_plain_object(&entry) {
                return Err([&path, " must be an object"].concat());
            }
            let e: Object = entry.unchecked_into();
            check_keys(
                &e,
                &["type", "id", "enabled", "requiredConsent", "settings"],
                &path,
            )?;
            let kind = match opt_str(&e, "type", &path)? {
                Some(s) if !s.is_empty() => s,
                _ => return Err([&path, ".type is required"].concat()),
            };
            let id = match opt_str(&e, "id", &path)? {
                Some(id) if id.is_empty() => {
                    return Err([&path, ".id must be a non-empty string"].concat())
                }
                Some(id) => id,
                None => kind.clone(),
            };
            for d in &destinations {
                if d.id == id {
                    return Err([&path, ": duplicate destination id ", &id].concat());
                }
            }
            let required = required_consent(&e, &path)?;
            let settings = opt_obj(&e, "settings", &path)?.unwrap_or_default();
            if opt_bool(&e, "enabled", &path)?.unwrap_or(true) {
                destinations.push(DestConfig {
                    kind,
                    id,
                    required,
                    settings,
                    path,
                });
            }
        }
    }
    // Read apart, so that a failure there has only these fields to drop.
    let top = top(&obj)?;
    Ok(Config {
        consent,
        honor_gpc: top.honor_gpc,
        destinations,
        scripts_url: top.scripts_url,
        scripts_cache_ttl_ms: top.scripts_cache_ttl_ms,
        timeout_ms,
        manager,
        dead_letter,
        nonce: top.nonce,
        storage_prefix: top.storage_prefix,
        debug: top.debug,
    })
}

/// The top-level fields of the config read after `destinations`.
struct Top {
    honor_gpc: bool,
    scripts_url: Option<String>,
    scripts_cache_ttl_ms: u64,
    nonce: Option<String>,
    storage_prefix: String,
    debug: bool,
}

/// Reads [`Top`] from the config object.
fn top(obj: &Object) -> Result<Top, String> {
    Ok(Top {
        honor_gpc: opt_bool(obj, "honorGpc", "config")?.unwrap_or(true),
        scripts_url: match opt_str(obj, "scriptsUrl", "config")? {
            // Checked here; kept as written (fetch resolves it the same way).
            Some(u) => match super::platform::resolve_url(&u) {
                Some((_, p, _)) if p == "http:" || p == "https:" => Some(u),
                _ => {
                    return Err(
                        ["config.scriptsUrl must be an http(s) URL, got '", &u, "'"].concat()
                    )
                }
            },
            None => None,
        },
        scripts_cache_ttl_ms: opt_uint(obj, "scriptsCacheTtlMs", "config")?.unwrap_or(300_000),
        nonce: opt_str(obj, "nonce", "config")?,
        storage_prefix: match opt_str(obj, "storagePrefix", "config")? {
            Some(p) => p,
            None => "consent-analytics".into(),
        },
        debug: opt_bool(obj, "debug", "config")?.unwrap_or(false),
    })
}
