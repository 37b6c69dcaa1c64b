//! Reads and validates `Analytics.load(config)` (SPEC section 8): the config is deserialized
//! with serde into the typed sections below by [`de`], whose errors name the field; unknown
//! keys are errors so a typo never silently disables a feature.

use std::fmt;

use js_sys::{Object, Reflect};
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

pub mod de;

use self::de::{from_value, AtLeastOne, PlainObject, Positive, PATH};
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
    /// `settings` (an empty object when absent): the page's own object, which each built-in
    /// type deserializes into its settings struct and a JavaScript type's factory receives.
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

/// `Analytics.load(config)` as the page wrote it. The fields are read in this order, so the
/// first bad one is reported (after any unknown key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct RawConfig {
    consent: Option<ConsentUpdate>,
    loading: Option<Loading>,
    retry: Option<Retry>,
    circuit_breaker: Option<CircuitBreaker>,
    dead_letter: Option<DeadLetter>,
    purge_on_revoke: Option<bool>,
    destinations: Option<Vec<Entry>>,
    honor_gpc: Option<bool>,
    scripts_url: Option<String>,
    scripts_cache_ttl_ms: Option<u64>,
    nonce: Option<String>,
    storage_prefix: Option<String>,
    debug: Option<bool>,
}

/// `config.loading`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct Loading {
    strategy: Option<StrategyName>,
    buffer_limit: Option<u64>,
    max_retries: Option<u64>,
    /// 0 is refused: scripts would time out at once while requests read it as no timeout.
    timeout_ms: Option<AtLeastOne>,
}

/// `config.loading.strategy`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum StrategyName {
    Lazy,
    Eager,
}

/// `config.retry`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct Retry {
    max_retries: Option<u64>,
    base_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    multiplier: Option<Positive>,
    jitter: Option<bool>,
}

/// `config.circuitBreaker`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct CircuitBreaker {
    failure_threshold: Option<u64>,
    recovery_timeout_ms: Option<u64>,
    half_open_successes: Option<u64>,
}

/// `config.deadLetter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct DeadLetter {
    storage_key: Option<String>,
    max_size: Option<u64>,
    ttl_ms: Option<u64>,
}

/// One entry of `config.destinations` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "an object")]
struct Entry {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    required_consent: Option<PurposeList>,
    settings: Option<PlainObject>,
    enabled: Option<bool>,
}

/// A purposes object `{ measurement: true, ... }` (`config.consent`, `setConsent`): the
/// (purpose, granted) pairs in the object's order. An `undefined` value leaves the purpose as
/// it is (a form's unset field).
pub struct ConsentUpdate(pub Vec<(Purpose, bool)>);

impl<'de> Deserialize<'de> for ConsentUpdate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConsentUpdate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of purpose: boolean")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(PurposeKey(p)) = map.next_key()? {
                    if let Some(on) = map.next_value::<Option<bool>>()? {
                        out.push((p, on));
                    }
                }
                Ok(ConsentUpdate(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A purpose named as a key of a purposes object.
struct PurposeKey(Purpose);

impl<'de> Deserialize<'de> for PurposeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match Purpose::from_name(&name) {
            Some(p) => Ok(PurposeKey(p)),
            None => Err(D::Error::custom(
                [
                    "unknown consent purpose ",
                    PATH,
                    " (expected necessary, functionality, experience, measurement, marketing)",
                ]
                .concat(),
            )),
        }
    }
}

/// A `requiredConsent` list: purposes that must all be granted.
pub struct PurposeList(pub Purposes);

impl<'de> Deserialize<'de> for PurposeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PurposeList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of purpose names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut set = Purposes::NONE;
                while let Some(PurposeName(p)) = seq.next_element()? {
                    set = set.with(p, true);
                }
                Ok(PurposeList(set))
            }
        }
        d.deserialize_any(V)
    }
}

/// An item of a `requiredConsent` list.
struct PurposeName(Purpose);

impl<'de> Deserialize<'de> for PurposeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match Purpose::from_name(&name) {
            Some(p) => Ok(PurposeName(p)),
            None => Err(D::Error::custom(
                [PATH, " is not a consent purpose: ", &name].concat(),
            )),
        }
    }
}

/// Parses a purposes object `{ measurement: true, ... }` at `path` into (purpose, granted) pairs.
pub fn parse_consent_object(v: &JsValue, path: &str) -> Result<Vec<(Purpose, bool)>, String> {
    from_value::<ConsentUpdate>(v, path).map(|c| c.0)
}

/// The `requiredConsent` list of `obj` (at `path`), `None` when absent.
pub fn required_consent(obj: &JsValue, path: &str) -> Result<Option<Purposes>, String> {
    let at = [path, ".requiredConsent"].concat();
    let v = match Reflect::get(obj, &JsValue::from_str("requiredConsent")) {
        Ok(v) => v,
        Err(e) => {
            return Err([
                &at,
                ": value could not be read: ",
                &super::platform::error_message(&e),
            ]
            .concat())
        }
    };
    if v.is_undefined() {
        return Ok(None);
    }
    parse_purpose_list(&v, &at).map(Some)
}

/// Parses a `requiredConsent` list at `path`.
pub fn parse_purpose_list(v: &JsValue, path: &str) -> Result<Purposes, String> {
    from_value::<PurposeList>(v, path).map(|l| l.0)
}

/// `storagePrefix` when absent.
const DEFAULT_PREFIX: &str = "consent-analytics";

/// Whether `key` is (or is in the key space of) something else the client with `prefix`
/// stores: its identity, relay outboxes and their heartbeats, the remote-scripts cache.
fn is_client_key(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix).and_then(|k| k.strip_prefix(':')) {
        Some(rest) => {
            matches!(rest, "anonymousId" | "userId" | "traits")
                || rest.starts_with("outbox")
                || rest.starts_with("scripts:")
        }
        None => false,
    }
}

/// Validates `v` as the load config.
pub fn parse(v: &JsValue) -> Result<Config, String> {
    let raw: RawConfig = if v.is_undefined() || v.is_null() {
        from_value(&Object::new(), "config")?
    } else {
        from_value(v, "config")?
    };
    let mut consent = Purposes::NONE;
    for (p, on) in raw.consent.map(|c| c.0).unwrap_or_default() {
        consent = consent.with(p, on);
    }
    let mut manager = ManagerConfig::default();
    let mut timeout_ms = 10_000;
    if let Some(l) = raw.loading {
        manager.strategy = match l.strategy {
            None | Some(StrategyName::Lazy) => Strategy::Lazy,
            Some(StrategyName::Eager) => Strategy::Eager,
        };
        if let Some(n) = l.buffer_limit {
            manager.buffer_limit = n.max(1) as usize;
        }
        if let Some(n) = l.max_retries {
            manager.load_max_retries = n.min(100) as u32;
        }
        if let Some(AtLeastOne(n)) = l.timeout_ms {
            timeout_ms = n;
        }
    }
    let mut retry = RetryPolicy::default();
    if let Some(r) = raw.retry {
        if let Some(n) = r.max_retries {
            retry.max_retries = n.min(100) as u32;
        }
        retry.base_delay_ms = r.base_delay_ms.unwrap_or(retry.base_delay_ms);
        retry.max_delay_ms = r.max_delay_ms.unwrap_or(retry.max_delay_ms);
        if let Some(Positive(m)) = r.multiplier {
            retry.multiplier = m;
        }
        retry.jitter = r.jitter.unwrap_or(retry.jitter);
    }
    manager.retry = retry;
    let mut breaker = BreakerConfig::default();
    if let Some(b) = raw.circuit_breaker {
        if let Some(n) = b.failure_threshold {
            breaker.failure_threshold = n.clamp(1, u32::MAX as u64) as u32;
        }
        breaker.recovery_timeout_ms = b.recovery_timeout_ms.unwrap_or(breaker.recovery_timeout_ms);
        if let Some(n) = b.half_open_successes {
            breaker.half_open_successes = n.clamp(1, u32::MAX as u64) as u32;
        }
    }
    manager.breaker = breaker;
    manager.purge_on_revoke = raw.purge_on_revoke.unwrap_or(true);
    let storage_prefix = raw.storage_prefix.unwrap_or_else(|| DEFAULT_PREFIX.into());

    // Everything the client stores lives under its prefix, the dead letters included, so two
    // clients with different prefixes never see each other's.
    let mut dead_letter = DeadLetterConfig {
        storage_key: [&storage_prefix, ":dlq"].concat(),
        ..DeadLetterConfig::default()
    };
    if let Some(d) = raw.dead_letter {
        if let Some(key) = d.storage_key {
            if is_client_key(&key, &storage_prefix) {
                return Err([
                    "config.deadLetter.storageKey must not be a key the client stores something else under (identity, outbox, scripts cache), got '",
                    &key,
                    "'",
                ]
                .concat());
            }
            dead_letter.storage_key = key;
        }
        dead_letter.max_size = d.max_size.map_or(dead_letter.max_size, |n| n as usize);
        dead_letter.ttl_ms = d.ttl_ms.unwrap_or(dead_letter.ttl_ms);
    }
    // A durable destination's events are dead-lettered once they are this old.
    manager.durable_ttl_ms = dead_letter.ttl_ms;

    let mut destinations: Vec<DestConfig> = Vec::new();
    for (i, e) in raw.destinations.unwrap_or_default().into_iter().enumerate() {
        let path = ["config.destinations[", &i.to_string(), "]"].concat();
        let kind = match e.kind {
            Some(s) if !s.is_empty() => s,
            _ => return Err([&path, ".type is required"].concat()),
        };
        let id = match e.id {
            Some(id) if id.is_empty() => {
                return Err([&path, ".id must be a non-empty string"].concat())
            }
            Some(id) => id,
            None => kind.clone(),
        };
        if destinations.iter().any(|d| d.id == id) {
            return Err([&path, ": duplicate destination id ", &id].concat());
        }
        if e.enabled.unwrap_or(true) {
            destinations.push(DestConfig {
                kind,
                id,
                required: e.required_consent.map(|l| l.0),
                settings: e.settings.map(|s| s.0).unwrap_or_default(),
                path,
            });
        }
    }
    let scripts_url = match raw.scripts_url {
        // Checked here; kept as written (fetch resolves it the same way).
        Some(u) => match super::platform::resolve_url(&u) {
            Some((_, p, _)) if p == "http:" || p == "https:" => Some(u),
            _ => return Err(["config.scriptsUrl must be an http(s) URL, got '", &u, "'"].concat()),
        },
        None => None,
    };
    Ok(Config {
        consent,
        honor_gpc: raw.honor_gpc.unwrap_or(true),
        destinations,
        scripts_url,
        scripts_cache_ttl_ms: raw.scripts_cache_ttl_ms.unwrap_or(300_000),
        timeout_ms,
        manager,
        dead_letter,
        nonce: raw.nonce,
        storage_prefix,
        debug: raw.debug.unwrap_or(false),
    })
}
