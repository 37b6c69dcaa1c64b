//! The product's HTTP requests, read through gloo-net's `Response`: the relay's batch POST and
//! the remote-scripts GET. Each one ends in a typed outcome, never a JavaScript
//! exception or a panic: a request the browser (or a `fetch` wrapper of the page's) refuses or
//! cannot send is a [`Failure`], and a request still unanswered after its time limit
//! is aborted (`AbortSignal.timeout`, or an `AbortController` and a gloo-timers `Timeout` where
//! the browser lacks it) and reported as [`Failure::TimedOut`].
//!
//! Also here: `navigator.sendBeacon` and the relay's request headers (a plain list of pairs,
//! names compared without regard to letter case as HTTP does).

use std::fmt;

use gloo_net::http::Response;
use gloo_timers::callback::Timeout;
use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, RequestInit, RequestRedirect, ResponseType};

/// Request headers, in the order they are sent: at most one per name (see [`set_header`]).
pub type Headers = Vec<(String, String)>;

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the time limit: the request was aborted.
    TimedOut,
    /// The browser refused or could not send the request (offline, DNS, CORS, a closed port, a
    /// header fetch does not accept); the browser's message.
    Failed(String),
}

/// The answer to the relay's POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The server answered with `status` (redirects excepted); for 429 and 503, the delay its
    /// `Retry-After` header asked for, if it had a valid one.
    Status {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` delay in ms (see [`retry_after_ms`]).
        retry_after_ms: Option<u64>,
    },
    /// The server answered with a redirect, which the request does not follow
    /// (`redirect: 'manual'`: only the configured endpoint receives events). A browser hides
    /// such an answer (an `opaqueredirect` response), its 3xx status included.
    Redirect,
}

/// The relay's POST of one batch.
pub struct Post<'a> {
    /// The endpoint (already resolved and checked to be http(s)).
    pub url: &'a str,
    /// The JSON body.
    pub body: &'a str,
    /// Every header to send.
    pub headers: &'a [(String, String)],
    /// Sent with `keepalive: true`, so the browser completes it after the page is gone (page
    /// hide).
    pub keepalive: bool,
    /// Aborted when unanswered after this many ms; 0: never.
    pub timeout_ms: u64,
}

/// Sends `post` and waits for its answer. A redirect is not followed.
pub async fn post(post: &Post<'_>) -> Result<Answer, Failure> {
    let deadline = Deadline::start(post.timeout_ms);
    let request = post_request(post, deadline.as_ref().map(|d| &d.signal))?;
    let response = send(request, deadline.as_ref()).await?;
    if response.type_() == ResponseType::Opaqueredirect {
        return Ok(Answer::Redirect);
    }
    let status = response.status();
    let retry_after_ms = match status {
        429 | 503 => retry_after_ms(
            response.headers().get("Retry-After").as_deref(),
            js_sys::Date::now(),
        ),
        _ => None,
    };
    Ok(Answer::Status {
        status,
        retry_after_ms,
    })
}

/// The request of `post`. gloo-net's builder has no `keepalive`, and web-sys's `RequestInit`
/// no setter for it: the init is built here and `keepalive` set on it with `Reflect`. Headers
/// are appended here too, where a header fetch refuses is an `Err` (gloo-net's `Headers` would
/// throw).
fn post_request(
    post: &Post<'_>,
    signal: Option<&AbortSignal>,
) -> Result<web_sys::Request, Failure> {
    let failed = |e: JsValue| Failure::Failed(message(&e));
    let headers = web_sys::Headers::new().map_err(failed)?;
    for (name, value) in post.headers {
        headers.append(name, value).map_err(failed)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(post.body));
    init.set_headers(&headers);
    init.set_redirect(RequestRedirect::Manual);
    init.set_signal(signal);
    if post.keepalive {
        Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE).map_err(failed)?;
    }
    request(post.url, &init)
}

/// The request of `url` with `init`. Built with web-sys rather than with gloo-net's
/// `RequestBuilder`, which rewrites the URL's query (it appends a `&` to a URL that has one).
fn request(url: &str, init: &RequestInit) -> Result<web_sys::Request, Failure> {
    web_sys::Request::new_with_str_and_init(url, init).map_err(|e| Failure::Failed(message(&e)))
}

/// Why the remote-scripts GET gave no body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError {
    /// No request or no answer (see [`Failure`]).
    Failure(Failure),
    /// A non-2xx answer.
    Status(u16),
    /// A 2xx answer whose body could not be read.
    Body,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Failure(Failure::TimedOut) => f.write_str("timed out"),
            GetError::Failure(Failure::Failed(m)) => write!(f, "failed: {m}"),
            GetError::Status(s) => write!(f, "answered HTTP {s}"),
            GetError::Body => f.write_str("failed while reading the body"),
        }
    }
}

/// `GET url` and its body as text, given up after `timeout_ms` (0: never). Redirects are
/// followed, as for any resource the page fetches.
pub async fn get_text(url: &str, timeout_ms: u64) -> Result<String, GetError> {
    let deadline = Deadline::start(timeout_ms);
    let init = RequestInit::new();
    init.set_signal(deadline.as_ref().map(|d| &d.signal));
    let request = request(url, &init).map_err(GetError::Failure)?;
    let response = send(request, deadline.as_ref())
        .await
        .map_err(GetError::Failure)?;
    if !response.ok() {
        return Err(GetError::Status(response.status()));
    }
    match response.text().await {
        Ok(text) => Ok(text),
        Err(_) if deadline.as_ref().is_some_and(Deadline::passed) => {
            Err(GetError::Failure(Failure::TimedOut))
        }
        Err(_) => Err(GetError::Body),
    }
}

#[wasm_bindgen]
extern "C" {
    /// The page's `fetch`, caught: pages and their tools often wrap it, and a wrapper may throw
    /// or resolve to something that is not a `Response`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn page_fetch(request: &web_sys::Request) -> Result<JsValue, JsValue>;
}

/// Sends `request` with the page's `fetch` and wraps the answer in gloo-net's [`Response`]; a
/// rejection is a [`Failure`], a timeout when `deadline` has passed. gloo-net's own
/// `Request::send` is not used: it lets a `fetch` that throws unwind through the wasm and
/// panics on an answer that is not a `Response`.
async fn send(request: web_sys::Request, deadline: Option<&Deadline>) -> Result<Response, Failure> {
    if !is_function(&js_sys::global(), "fetch") {
        return Err(Failure::Failed("fetch is not available".into()));
    }
    // `Promise.resolve`: whatever the page's fetch returned, a real promise to await.
    let answer = match page_fetch(&request) {
        Ok(v) => JsFuture::from(Promise::resolve(&v)).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(v) => match v.dyn_into::<web_sys::Response>() {
            Ok(response) => Ok(Response::from(response)),
            Err(_) => Err(Failure::Failed(
                "fetch did not answer with a Response".into(),
            )),
        },
        Err(_) if deadline.is_some_and(Deadline::passed) => Err(Failure::TimedOut),
        Err(e) => Err(Failure::Failed(message(&e))),
    }
}

/// The time limit of one request: a signal that aborts it, and the timer behind the signal
/// where the browser has no `AbortSignal.timeout` (dropped with the request, which clears it).
struct Deadline {
    signal: AbortSignal,
    _timer: Option<Timeout>,
}

impl Deadline {
    /// A limit of `ms` from now; none for 0, or where the browser cannot abort a fetch.
    fn start(ms: u64) -> Option<Deadline> {
        if ms == 0 {
            return None;
        }
        let ms = ms.min(i32::MAX as u64) as u32;
        let class = Reflect::get(&js_sys::global(), &"AbortSignal".into()).ok()?;
        if is_function(&class, "timeout") {
            return Some(Deadline {
                signal: AbortSignal::timeout_with_u32(ms),
                _timer: None,
            });
        }
        let controller = AbortController::new().ok()?;
        let signal = controller.signal();
        let timer = Timeout::new(ms, move || controller.abort());
        Some(Deadline {
            signal,
            _timer: Some(timer),
        })
    }

    /// Whether the limit has passed (the request was aborted for it).
    fn passed(&self) -> bool {
        self.signal.aborted()
    }
}

/// A `Retry-After` value as a delay in ms from `now_ms`: delay-seconds, or an HTTP-date
/// (IMF-fixdate, RFC 850, asctime; asctime carries no zone and means GMT), a past date being 0;
/// `None` when it is neither (or absent). The retry policy caps the delay at
/// `retry.maxDelayMs`.
pub fn retry_after_ms(value: Option<&str>, now_ms: f64) -> Option<u64> {
    let v = value?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds: as long a wait as can be (capped later).
        return Some(
            v.parse::<u64>()
                .map_or(u64::MAX, |s| s.saturating_mul(1000)),
        );
    }
    // An HTTP-date has a time of day (so "1.5" or "-1" is not taken for a date).
    if !has_time_of_day(v) {
        return None;
    }
    let at = if v.ends_with(|c: char| c.is_ascii_digit()) {
        js_sys::Date::parse(&[v, " GMT"].concat())
    } else {
        js_sys::Date::parse(v)
    };
    (!at.is_nan()).then(|| (at - now_ms).max(0.0) as u64)
}

/// Whether `v` holds `dd:dd:dd` (two digits, a colon, two digits, a colon, two digits).
fn has_time_of_day(v: &str) -> bool {
    const SHAPE: &[u8; 8] = b"00:00:00";
    v.as_bytes().windows(SHAPE.len()).any(|w| {
        w.iter().zip(SHAPE).all(|(&b, &s)| {
            if s == b':' {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        })
    })
}

/// Request headers with `Content-Type: application/json` and, for a writeKey,
/// `Authorization: Basic` and the base64 of the key's UTF-8 bytes and `:`.
pub fn base_headers(write_key: Option<&str>) -> Headers {
    let mut headers = vec![("Content-Type".into(), "application/json".into())];
    if let Some(key) = write_key {
        // `btoa` takes a string of code points below 256: one per byte of the UTF-8 text.
        let bytes: String = [key, ":"].concat().bytes().map(char::from).collect();
        if let Some(b64) = web_sys::window().and_then(|w| w.btoa(&bytes).ok()) {
            headers.push(("Authorization".into(), ["Basic ", &b64].concat()));
        }
    }
    headers
}

/// Sets header `name` to `value`, first removing any header of the same name in another letter
/// case (header names are case-insensitive; fetch would join both values).
pub fn set_header(headers: &mut Headers, name: &str, value: &str) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.into(), value.into()));
}

/// `navigator.sendBeacon(url, body)`: whether the browser took it; false where it is missing or
/// throws.
pub fn send_beacon(url: &str, body: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}

/// Whether the browser has `navigator.sendBeacon`.
pub fn can_beacon() -> bool {
    web_sys::window().is_some_and(|w| is_function(&w.navigator(), "sendBeacon"))
}

/// Whether `obj[name]` is a function (false when reading it throws).
fn is_function(obj: &JsValue, name: &str) -> bool {
    Reflect::get(obj, &name.into()).is_ok_and(|f| f.is_function())
}

/// The message of a thrown value (an `Error`'s `message`, or the value as a string).
fn message(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(e) => e.message().into(),
        None => e.as_string().unwrap_or_else(|| "unknown error".into()),
    }
}
