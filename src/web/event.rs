//! Builds Segment-spec event objects and validates page input: names, plain objects, values
//! JSON can carry (no functions, symbols, BigInt or cycles) and the 32 KB size limit.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::rc::Rc;

use js_sys::Object;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::js::{get, is_plain_object};
use crate::ports::FallbackStorage;

/// Largest serialised event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;

/// The options an event call accepts.
const OPTION_KEYS: &[&str] = &[
    "messageId",
    "timestamp",
    "anonymousId",
    "userId",
    "integrations",
    "context",
];

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = jsonProblem)]
    fn json_problem(v: &JsValue, path: &str) -> Option<String>;
}

/// Fails with a message naming the path (from `path`) where `v` holds something JSON cannot
/// carry: a function, symbol or BigInt, a cycle, nesting over 64 levels, an unreadable value.
pub fn check_json_value(v: &JsValue, path: &str) -> Result<(), String> {
    match json_problem(v, path) {
        Some(m) => Err(m),
        None => Ok(()),
    }
}

/// Validates an optional plain-object argument (`properties`, `traits`); returns a copy-free
/// handle or a new empty object when absent.
pub fn object_arg(v: &JsValue, name: &str) -> Result<JsValue, String> {
    if v.is_undefined() || v.is_null() {
        return Ok(Object::new().into());
    }
    if !is_plain_object(v) {
        return Err([name, " must be a plain object"].concat());
    }
    check_json_value(v, name)?;
    Ok(v.clone())
}

/// Validates the `options` argument; returns it, or undefined when absent.
pub fn options_arg(v: &JsValue) -> Result<JsValue, String> {
    if v.is_undefined() || v.is_null() {
        return Ok(JsValue::UNDEFINED);
    }
    if !is_plain_object(v) {
        return Err("options must be a plain object".into());
    }
    let obj: &Object = v.unchecked_ref();
    if let Err(m) = super::js::check_keys(obj, OPTION_KEYS, "options") {
        return Err(match m.strip_prefix("unknown option ") {
            Some(rest) => ["unknown key ", rest].concat(),
            None => m,
        });
    }
    for k in ["messageId", "timestamp", "anonymousId", "userId"] {
        let x = get(v, k);
        if !x.is_undefined() && !x.is_null() && x.as_string().is_none_or(|s| s.is_empty()) {
            return Err(["options.", k, " must be a non-empty string"].concat());
        }
    }
    for k in ["integrations", "context"] {
        let x = get(v, k);
        if !x.is_undefined() && !is_plain_object(&x) {
            return Err(["options.", k, " must be a plain object"].concat());
        }
    }
    check_json_value(v, "options")?;
    Ok(v.clone())
}

/// The visitor's identity, persisted under `<prefix>:anonymousId`, `:userId`, `:traits`.
pub struct Identity {
    store: FallbackStorage,
    prefix: String,
    /// The anonymous id (uuid v4).
    pub anonymous_id: Rc<str>,
    /// The user id, once identified.
    pub user_id: Option<Rc<str>>,
    /// Persisted user traits (a plain object).
    pub traits: JsValue,
    /// The current group id.
    pub group_id: Option<String>,
}

impl Identity {
    /// Loads the identity, creating and persisting a new anonymous id when there is none.
    pub fn load(store: FallbackStorage, prefix: &str) -> Identity {
        let mut me = Identity {
            store,
            prefix: prefix.into(),
            anonymous_id: Rc::from(""),
            user_id: None,
            traits: JsValue::UNDEFINED,
            group_id: None,
        };
        me.read();
        if me.anonymous_id.is_empty() {
            me.renew();
        }
        me
    }

    /// Follows a change another tab made to localStorage (a `storage` event for `key`, `None`
    /// for a `clear()`), as Segment's analytics.js reads the identity from storage for every
    /// call: an `identify` there sets the user here; a `reset` there (a new anonymous id)
    /// forgets the user and group here. Changes to other keys (the outbox's, for instance)
    /// are ignored.
    pub fn follow(&mut self, key: Option<String>) {
        let ours = match key {
            Some(k) => matches!(
                k.strip_prefix(self.prefix.as_str()),
                Some(":anonymousId" | ":userId" | ":traits")
            ),
            None => true,
        };
        if ours {
            self.read();
        }
    }

    /// Reads the stored identity. A missing or invalid anonymous id keeps the current one; a
    /// different one (another tab's `reset`) also forgets the group.
    fn read(&mut self) {
        if let Some(a) = self.store.get(&self.key("anonymousId")) {
            if crate::uuid::is_uuid(&a) && *a != *self.anonymous_id {
                self.anonymous_id = a.into();
                self.group_id = None;
            }
        }
        self.user_id = match self.store.get(&self.key("userId")) {
            Some(u) if !u.is_empty() => Some(u.into()),
            _ => None,
        };
        self.traits = match self.store.get(&self.key("traits")) {
            Some(t) => js_sys::JSON::parse(&t).unwrap_or_default(),
            None => JsValue::UNDEFINED,
        };
        if !is_plain_object(&self.traits) {
            self.traits = Object::new().into();
        }
    }

    fn key(&self, k: &str) -> String {
        [&self.prefix, ":", k].concat()
    }

    /// Starts and persists a new anonymous id.
    fn renew(&mut self) {
        let a = super::platform::uuid();
        self.store.set(&self.key("anonymousId"), &a);
        self.anonymous_id = a.into();
    }

    /// Sets and persists the user id.
    pub fn set_user(&mut self, id: &str) {
        self.store.set(&self.key("userId"), id);
        self.user_id = Some(id.into());
    }

    /// Merges `traits` into the persisted traits.
    pub fn merge_traits(&mut self, traits: &JsValue) {
        let merged = match super::js::assign(&Object::new(), &self.traits) {
            Ok(m) => super::js::assign(&m, traits),
            Err(e) => Err(e),
        };
        let merged = match merged {
            Ok(m) => m,
            Err(_) => Object::new(),
        };
        if let Ok(s) = super::js::stringify(&merged) {
            self.store.set(&self.key("traits"), &s);
        }
        self.traits = merged.into();
    }

    /// Forgets the user (userId, traits, group) and starts a new anonymous id.
    pub fn reset(&mut self) {
        self.store.remove(&self.key("userId"));
        self.store.remove(&self.key("traits"));
        self.user_id = None;
        self.traits = Object::new().into();
        self.group_id = None;
        self.renew();
    }
}

#[wasm_bindgen(module = "/src/web/host.js")]
extern "C" {
    /// The `context.page` object, read from the document.
    #[wasm_bindgen(js_name = pageContext)]
    pub fn page_context() -> Object;
}

/// `json` if it is within the 32 KB limit, else an error naming its size.
pub fn check_size(json: String) -> Result<String, String> {
    if json.len() > MAX_EVENT_BYTES {
        return Err([
            "event is ",
            &crate::json::dec(json.len() as u64),
            " bytes serialised, over the 32 KB limit",
        ]
        .concat());
    }
    Ok(json)
}

/// Serialises an event; errors name the problem (a toJSON that throws, the size limit).
pub fn serialise(event: &JsValue) -> Result<String, String> {
    let s = match super::js::stringify(event) {
        Ok(s) => s,
        Err(e) => {
            return Err([
                "event cannot be serialised: ",
                &super::platform::error_message(&e),
            ]
            .concat())
        }
    };
    check_size(s)
}
