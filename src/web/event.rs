//! Builds Segment-spec event objects and validates page input: names, plain objects, values
//! JSON can carry (no functions, symbols, BigInt or cycles) and the 32 KB size limit.

use std::rc::Rc;

use js_sys::{Array, Date, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::js::{get, is_plain_object};
use super::lifecycle::identity_changed;
use crate::event::EventKind;
use crate::ports::FallbackStorage;

/// Largest serialised event accepted, in bytes.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;

/// Why an `options.timestamp` was refused.
const TIMESTAMP: &str = "options.timestamp must be a Date or a date string (ISO-8601)";

/// The options an event call accepts.
const OPTION_KEYS: &[&str] = &[
    "messageId",
    "timestamp",
    "anonymousId",
    "userId",
    "integrations",
    "context",
];

#[wasm_bindgen]
extern "C" {
    /// `Date.prototype.toISOString.call(date)`: an invalid date throws a RangeError, an object
    /// that only inherits from `Date.prototype` a TypeError.
    #[wasm_bindgen(catch, js_namespace = ["Date", "prototype", "toISOString"], js_name = call)]
    fn iso_string(date: &JsValue) -> Result<JsValue, JsValue>;
}

/// A Date, or a non-empty date string `Date` can read, as an ISO-8601 UTC string with
/// milliseconds (`2026-11-29T20:22:31.123Z`); `None` for anything else (an invalid date,
/// another type).
pub fn iso_date(v: &JsValue) -> Option<JsValue> {
    if v.is_instance_of::<Date>() {
        iso_string(v).ok()
    } else if v.as_string().is_some_and(|s| !s.is_empty()) {
        iso_string(&Date::new(v)).ok()
    } else {
        None
    }
}

/// Deepest nesting of objects and arrays an event may have.
const MAX_DEPTH: usize = 64;

/// What JSON cannot carry in `v`, a value that is not an object: the kind named in messages.
fn unjsonable(v: &JsValue) -> Option<&'static str> {
    if v.is_function() {
        Some("function")
    } else if v.is_symbol() {
        Some("symbol")
    } else if v.is_bigint() {
        Some("BigInt")
    } else {
        None
    }
}

/// Walks a value for what JSON cannot carry, looking only at values: the path to a problem is
/// spelled out only once one is found, so the usual (clean) value costs no key reads.
struct JsonWalk {
    /// The objects and arrays being walked, outermost first (for cycles and depth).
    open: Vec<JsValue>,
}

/// What is wrong at some place in a walked value.
struct Problem {
    /// The steps from the walked value to the place (`.items`, `[2]`), innermost first.
    steps: Vec<String>,
    /// The message's tail: ` is a function, which JSON cannot carry`, or
    /// `: value could not be read: ...` for a read that threw.
    what: String,
}

impl Problem {
    fn new(what: String) -> Self {
        Problem {
            steps: Vec::new(),
            what,
        }
    }
}

impl JsonWalk {
    /// The first problem in `v`, if any.
    fn walk(&mut self, v: &JsValue) -> Option<Problem> {
        // The usual values first: each check is a call into JavaScript.
        if v.is_string() || v.as_f64().is_some() {
            return None;
        }
        if !v.is_object() {
            return unjsonable(v)
                .map(|kind| Problem::new([" is a ", kind, ", which JSON cannot carry"].concat()));
        }
        self.walk_object(v)
    }

    /// The first problem in `v`, an object or array, if any.
    fn walk_object(&mut self, v: &JsValue) -> Option<Problem> {
        // An object with a toJSON method (a Date, say) says itself what it becomes.
        if Reflect::get(v, &super::js::field("toJSON")).is_ok_and(|f| !f.is_undefined()) {
            return None;
        }
        if self.open.contains(v) {
            return Some(Problem::new(" is a circular reference".into()));
        }
        if self.open.len() > MAX_DEPTH {
            return Some(Problem::new(" is nested too deeply".into()));
        }
        let array = Array::is_array(v);
        let values = if array {
            super::js::items(v, "")
        } else {
            super::js::values(v, "")
        };
        let values = match values {
            Ok(l) => l,
            Err(m) => return Some(Problem::new([": ", &m].concat())),
        };
        self.open.push(v.clone());
        for (i, x) in values.iter().enumerate() {
            if let Some(mut problem) = self.walk(&x) {
                problem.steps.push(step(v, array, i as u32));
                return Some(problem);
            }
        }
        self.open.pop();
        None
    }
}

/// The step to item `i` of `v`: `[i]` in an array, `.key` in an object (whose keys come in the
/// order of its values).
fn step(v: &JsValue, array: bool, i: u32) -> String {
    if array {
        ["[", &i.to_string(), "]"].concat()
    } else {
        let keys = super::js::keys_at(v, "").unwrap_or_default();
        [".", &super::js::key(&keys, i)].concat()
    }
}

/// Fails with a message naming the path (from `path`) where `v` holds something JSON cannot
/// carry: a function, symbol or BigInt, a cycle, nesting over 64 levels, a value whose getter
/// or proxy trap throws. Objects with a `toJSON` method are left to it.
pub fn check_json_value(v: &JsValue, path: &str) -> Result<(), String> {
    let mut walk = JsonWalk { open: Vec::new() };
    // Usually an object (properties, options, an event): checked as one straight away.
    let problem = if v.is_object() {
        walk.walk_object(v)
    } else {
        walk.walk(v)
    };
    match problem {
        Some(p) => {
            let mut message = String::from(path);
            p.steps.iter().rev().for_each(|s| message.push_str(s));
            message.push_str(&p.what);
            Err(message)
        }
        None => Ok(()),
    }
}

/// Validates an optional plain-object argument (`properties`, `traits`); returns a copy-free
/// handle or a new empty object when absent.
pub fn object_arg(v: &JsValue, name: &str) -> Result<JsValue, String> {
    if !v.is_object() && (v.is_undefined() || v.is_null()) {
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
    for k in ["messageId", "anonymousId", "userId"] {
        let x = get(v, k);
        if !x.is_undefined() && !x.is_null() && x.as_string().is_none_or(|s| s.is_empty()) {
            return Err(["options.", k, " must be a non-empty string"].concat());
        }
    }
    let t = get(v, "timestamp");
    if !t.is_undefined() && !t.is_null() && iso_date(&t).is_none() {
        return Err(TIMESTAMP.into());
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

/// Validates an event a source middleware returned as a new one is validated (its type was
/// checked already; its JSON values are checked when it is serialised): the fields of its type
/// and the common ones. Normalises its `timestamp` (a Date or date string) to ISO-8601 UTC
/// with milliseconds. Returns its messageId.
pub fn check_event(e: &JsValue, kind: EventKind) -> Result<String, String> {
    let text = |k: &str| get(e, k).as_string().filter(|s| !s.trim().is_empty());
    let absent = |k: &str| {
        let v = get(e, k);
        v.is_undefined() || v.is_null()
    };
    let mut strings: &[&str] = &["messageId", "anonymousId"];
    let mut objects: &[&str] = &["context", "integrations"];
    match kind {
        EventKind::Track => {
            strings = &["messageId", "anonymousId", "event"];
            objects = &["context", "integrations", "properties"];
        }
        EventKind::Page => {
            if !absent("name") && !get(e, "name").is_string() {
                return Err("name must be a string".into());
            }
            objects = &["context", "integrations", "properties"];
        }
        EventKind::Identify => objects = &["context", "integrations", "traits"],
        EventKind::Group => {
            strings = &["messageId", "anonymousId", "groupId"];
            objects = &["context", "integrations", "traits"];
        }
        EventKind::Alias => strings = &["messageId", "anonymousId", "userId", "previousId"],
        EventKind::Consent => {}
    }
    for k in strings {
        if text(k).is_none() {
            return Err([k, " must be a non-empty string"].concat());
        }
    }
    for k in objects {
        if !is_plain_object(&get(e, k)) {
            return Err([k, " must be a plain object"].concat());
        }
    }
    if !absent("userId") && text("userId").is_none() {
        return Err("userId must be a non-empty string or null".into());
    }
    let Some(t) = iso_date(&get(e, "timestamp")) else {
        return Err(TIMESTAMP["options.".len()..].into());
    };
    super::js::set(e, "timestamp", &t);
    Ok(text("messageId").unwrap_or_default())
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
    /// `anonymous_id` and `user_id` (or null) as JavaScript strings, made when they change:
    /// every event carries them.
    values: (JsValue, JsValue),
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
            values: (JsValue::UNDEFINED, JsValue::NULL),
        };
        me.read();
        if me.anonymous_id.is_empty() {
            me.renew();
        }
        me
    }

    /// Follows a change another tab made to localStorage (a `storage` event for `key`, `None`
    /// for a `clear()`) or another client of this page made (`None`), as Segment's analytics.js reads the identity from storage for every
    /// call: an `identify` there sets the user here; a `reset` there (a new anonymous id)
    /// forgets the user and group here. Changes to other keys (the outbox's, for instance)
    /// are ignored.
    pub fn follow(&mut self, key: Option<String>) {
        let ours = match &key {
            Some(k) => matches!(
                k.strip_prefix(self.prefix.as_str()),
                Some(":anonymousId" | ":userId" | ":traits")
            ),
            None => true,
        };
        if ours {
            // Another tab wrote localStorage: its value is newer than a copy this page kept
            // in memory when the storage refused it.
            if let Some(k) = &key {
                self.store.forget_copy(k);
            }
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
        self.remake_values();
    }

    /// Remakes [`Identity::values`] after a change.
    fn remake_values(&mut self) {
        self.values = (
            JsValue::from_str(&self.anonymous_id),
            self.user_id
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
    }

    /// The anonymous id and the user id (or null) as JavaScript strings.
    pub fn values(&self) -> &(JsValue, JsValue) {
        &self.values
    }

    fn key(&self, k: &str) -> String {
        [&self.prefix, ":", k].concat()
    }

    /// Starts and persists a new anonymous id.
    fn renew(&mut self) {
        let a = super::platform::uuid();
        self.store.set(&self.key("anonymousId"), &a);
        self.anonymous_id = a.into();
        self.remake_values();
        identity_changed();
    }

    /// Sets and persists the user id.
    pub fn set_user(&mut self, id: &str) {
        self.store.set(&self.key("userId"), id);
        self.user_id = Some(id.into());
        self.remake_values();
        identity_changed();
    }

    /// `traits` merged over the persisted traits, as a new object (nothing changes yet). As
    /// analytics.js: an identify naming a different user than the stored one starts from no
    /// traits, so one user's traits never carry over to the next.
    pub fn merged_traits(&self, user: Option<&str>, traits: &JsValue) -> Object {
        let other = matches!((user, &self.user_id), (Some(u), Some(cur)) if **cur != *u);
        let base = if other {
            &JsValue::UNDEFINED
        } else {
            &self.traits
        };
        // Copied as data (a `__proto__` key stays an own key).
        super::js::merged(&[base, traits]).unwrap_or_default()
    }

    /// Replaces and persists the traits (from [`Identity::merged_traits`]).
    pub fn set_traits(&mut self, traits: Object) {
        if let Ok(s) = super::js::stringify(&traits) {
            self.store.set(&self.key("traits"), &s);
        }
        self.traits = traits.into();
        identity_changed();
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

thread_local! {
    /// The window's location and document, looked up once (every event reads them), and the
    /// document's referrer, which does not change while it is open.
    static PAGE: (Option<web_sys::Location>, Option<web_sys::Document>, JsValue) = {
        let window = web_sys::window();
        let document = window.as_ref().and_then(web_sys::Window::document);
        let referrer = document.as_ref().map_or_else(String::new, web_sys::Document::referrer);
        (
            window.as_ref().map(web_sys::Window::location),
            document,
            JsValue::from_str(&referrer),
        )
    };
    /// The last `location.href` read and `context.page` made from it (without the title): the
    /// URL changes far less often than events are tracked.
    static LAST_PAGE: std::cell::RefCell<(JsValue, Object)> =
        std::cell::RefCell::new((JsValue::UNDEFINED, Object::new()));
}

/// The keys of `context.page`, in the order events carry them.
pub const PAGE_KEYS: [&str; 5] = ["path", "referrer", "search", "title", "url"];

/// `context.page`, read from the document: its path, referrer, search, title and URL (without
/// the fragment), as a new object. Empty strings outside a document.
pub fn page_context() -> Object {
    PAGE.with(|(location, document, referrer)| {
        let read = |o: &JsValue, k| Reflect::get(o, &super::js::field(k)).unwrap_or_default();
        let href = location
            .as_ref()
            .map_or(JsValue::UNDEFINED, |l| read(l, "href"));
        let title = document
            .as_ref()
            .map_or(JsValue::UNDEFINED, |d| read(d, "title"));
        LAST_PAGE.with_borrow_mut(|(last_href, last)| {
            if href != *last_href {
                *last = page_fields(location.as_ref(), referrer);
                *last_href = href;
            }
            let page = Object::assign(&Object::new(), last);
            super::js::set_field(&page, "title", &text_or_empty(title));
            page
        })
    })
}

/// `context.page` for the location as it is now, with an empty title.
fn page_fields(location: Option<&web_sys::Location>, referrer: &JsValue) -> Object {
    let read = |r: Result<String, JsValue>| r.unwrap_or_default();
    let (path, search, href) = location.map_or_else(Default::default, |l| {
        (read(l.pathname()), read(l.search()), read(l.href()))
    });
    let url = href.split('#').next().unwrap_or_default();
    let page = Object::new();
    let set = |k, v: &str| super::js::set_field(&page, k, &JsValue::from_str(v));
    set("path", &path);
    super::js::set_field(&page, "referrer", referrer);
    set("search", &search);
    set("title", "");
    set("url", url);
    page
}

/// `v` if it is a string, else the empty string.
fn text_or_empty(v: JsValue) -> JsValue {
    if v.is_string() {
        v
    } else {
        JsValue::from_str("")
    }
}

/// `json` if it is within the 32 KB limit, else an error naming its size.
pub fn check_size(json: String) -> Result<String, String> {
    if json.len() > MAX_EVENT_BYTES {
        return Err([
            "event is ",
            &json.len().to_string(),
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
