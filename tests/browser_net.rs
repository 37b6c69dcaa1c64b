//! The product's requests in real Chromium (`src/web/net.rs`): a rejected fetch, a timeout, the
//! keepalive hand-over and the relay's request options, the remote-scripts GET, `Retry-After`
//! parsing and the relay's headers.
#![cfg(target_arch = "wasm32")]

use consent_analytics::web::net::{
    base_headers, can_beacon, get_text, post, retry_after_ms, set_header, Answer, Failure,
    GetError, Post,
};
use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
// Replaces window.fetch: every Request it receives is kept in `seen`; it answers `status` with
// `headers`, or (status 0) never answers until the request's signal aborts.
export function fakeFetch(status, headers) {
  const real = globalThis.fetch;
  const seen = [];
  globalThis.fetch = (req) => {
    seen.push(req);
    if (status) return Promise.resolve(new Response(null, { status, headers }));
    return new Promise((_, reject) => {
      const s = req.signal;
      if (s.aborted) reject(s.reason);
      s.addEventListener('abort', () => reject(s.reason));
    });
  };
  return { seen, restore() { globalThis.fetch = real; } };
}
export function restore(fake) { fake.restore(); }
// Replaces window.fetch by a wrapper that misbehaves: throws at once ('throw'), or resolves to
// something that is not a Response ('object'), as a broken wrapper of another tool might.
export function brokenFetch(how) {
  const real = globalThis.fetch;
  globalThis.fetch = () => {
    if (how === 'throw') throw new TypeError('wrapper broke');
    return how === 'object' ? Promise.resolve({ status: 200, ok: true }) : { then: 1 };
  };
  return { restore() { globalThis.fetch = real; } };
}
export function seen(fake, i) { return fake.seen[i]; }
export function seenCount(fake) { return fake.seen.length; }
export async function bodyOf(req) { return await req.text(); }
"#)]
extern "C" {
    fn fakeFetch(status: u16, headers: JsValue) -> JsValue;
    fn restore(fake: &JsValue);
    #[wasm_bindgen(js_name = brokenFetch)]
    fn broken_fetch(how: &str) -> JsValue;
    fn seen(fake: &JsValue, i: u32) -> web_sys::Request;
    #[wasm_bindgen(js_name = seenCount)]
    fn seen_count(fake: &JsValue) -> u32;
    #[wasm_bindgen(js_name = bodyOf)]
    async fn body_of(req: &web_sys::Request) -> JsValue;
}

fn headers() -> Vec<(String, String)> {
    base_headers(None)
}

fn relay_post<'a>(url: &'a str, headers: &'a [(String, String)], keepalive: bool) -> Post<'a> {
    Post {
        url,
        body: r#"{"batch":[]}"#,
        headers,
        keepalive,
        timeout_ms: 5000,
    }
}

#[wasm_bindgen_test]
async fn a_rejected_fetch_is_a_network_failure_with_the_browser_message() {
    let h = headers();
    match post(&relay_post("http://127.0.0.1:9/", &h, false)).await {
        Err(Failure::Failed(m)) => assert!(!m.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[wasm_bindgen_test]
async fn a_page_fetch_that_throws_or_answers_no_response_is_a_failure_not_a_panic() {
    let h = headers();
    for (how, expected) in [
        ("throw", "wrapper broke"),
        ("object", "fetch did not answer with a Response"),
        ("not a promise", "fetch did not answer with a Response"),
    ] {
        let fake = broken_fetch(how);
        let posted = post(&relay_post("/relay", &h, false)).await;
        let got = get_text("/scripts", 0).await;
        restore(&fake);
        assert_eq!(posted, Err(Failure::Failed(expected.into())), "{how}");
        assert_eq!(
            got,
            Err(GetError::Failure(Failure::Failed(expected.into()))),
            "{how}"
        );
    }
}

#[wasm_bindgen_test]
async fn a_header_fetch_refuses_is_a_network_failure_not_an_exception() {
    let h = vec![("Bad Name".to_string(), "x".to_string())];
    match post(&relay_post("/never", &h, false)).await {
        Err(Failure::Failed(m)) => assert!(!m.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[wasm_bindgen_test]
async fn an_unanswered_request_is_aborted_at_its_time_limit_as_a_timeout() {
    let fake = fakeFetch(0, JsValue::UNDEFINED);
    let h = headers();
    let got = post(&Post {
        timeout_ms: 30,
        ..relay_post("/v1/batch", &h, false)
    })
    .await;
    let aborted = seen(&fake, 0).signal().aborted();
    restore(&fake);
    assert_eq!(got, Err(Failure::TimedOut));
    assert!(aborted);
}

#[wasm_bindgen_test]
async fn the_keepalive_request_carries_keepalive_and_is_not_redirected() {
    let fake = fakeFetch(200, JsValue::UNDEFINED);
    let mut h = base_headers(Some("key"));
    set_header(&mut h, "X-Site", "a");
    let kept = post(&relay_post("/v1/batch?x=1", &h, true)).await;
    let plain = post(&relay_post("/v1/batch", &h, false)).await;
    let (first, second) = (seen(&fake, 0), seen(&fake, 1));
    restore(&fake);
    let ok = Ok(Answer::Status {
        status: 200,
        retry_after_ms: None,
    });
    assert_eq!(kept, ok);
    assert_eq!(plain, ok);
    let keepalive = |r: &web_sys::Request| Reflect::get(r, &"keepalive".into()).unwrap();
    assert_eq!(keepalive(&first), JsValue::TRUE);
    assert_eq!(keepalive(&second), JsValue::FALSE);
    for r in [&first, &second] {
        assert_eq!(r.method(), "POST");
        assert_eq!(r.redirect(), web_sys::RequestRedirect::Manual);
        let hs = r.headers();
        assert_eq!(
            hs.get("content-type").unwrap().as_deref(),
            Some("application/json")
        );
        assert_eq!(
            hs.get("authorization").unwrap().as_deref(),
            Some("Basic a2V5Og==")
        );
        assert_eq!(hs.get("x-site").unwrap().as_deref(), Some("a"));
    }
    // The URL's query is sent as it is.
    assert!(first.url().ends_with("/v1/batch?x=1"), "{}", first.url());
    assert_eq!(
        body_of(&first).await.as_string().as_deref(),
        Some(r#"{"batch":[]}"#)
    );
}

#[wasm_bindgen_test]
async fn retry_after_is_read_on_429_and_503_only() {
    let h = headers();
    for (status, expected) in [(429, Some(7000)), (503, Some(7000)), (500, None)] {
        let answer = js_sys::Object::new();
        Reflect::set(&answer, &"Retry-After".into(), &"7".into()).unwrap();
        let fake = fakeFetch(status, answer.into());
        let got = post(&relay_post("/v1/batch", &h, false)).await;
        restore(&fake);
        assert_eq!(
            got,
            Ok(Answer::Status {
                status,
                retry_after_ms: expected
            })
        );
    }
}

#[wasm_bindgen_test]
async fn the_get_reads_a_body_and_reports_a_status_and_a_timeout() {
    assert_eq!(
        get_text("data:text/plain,hello", 5000).await,
        Ok("hello".to_string())
    );
    let fake = fakeFetch(500, JsValue::UNDEFINED);
    let got = get_text("/scripts", 5000).await;
    restore(&fake);
    assert_eq!(got, Err(GetError::Status(500)));
    assert_eq!(GetError::Status(500).to_string(), "answered HTTP 500");
    let fake = fakeFetch(0, JsValue::UNDEFINED);
    let got = get_text("/scripts?consent=x", 30).await;
    let url = seen(&fake, 0).url();
    let count = seen_count(&fake);
    restore(&fake);
    assert_eq!(got, Err(GetError::Failure(Failure::TimedOut)));
    assert_eq!(
        GetError::Failure(Failure::TimedOut).to_string(),
        "timed out"
    );
    assert!(url.ends_with("/scripts?consent=x"), "{url}");
    assert_eq!(count, 1);
}

#[wasm_bindgen_test]
fn headers_are_replaced_whatever_their_letter_case() {
    let mut h = base_headers(Some("é"));
    // The key's UTF-8 bytes (C3 A9) and ':'.
    assert_eq!(
        h,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), "Basic w6k6".to_string()),
        ]
    );
    set_header(&mut h, "content-type", "text/plain");
    set_header(&mut h, "X-A", "1");
    assert_eq!(
        h,
        vec![
            ("Authorization".to_string(), "Basic w6k6".to_string()),
            ("content-type".to_string(), "text/plain".to_string()),
            ("X-A".to_string(), "1".to_string()),
        ]
    );
    assert!(can_beacon());
}

/// `retry_after_ms(v)` now, as a float (None when it is not a delay).
fn retry_after(v: &str) -> Option<f64> {
    retry_after_ms(Some(v), js_sys::Date::now()).map(|ms| ms as f64)
}

#[wasm_bindgen_test]
fn retry_after_reads_delay_seconds_and_the_three_http_date_forms() {
    assert_eq!(retry_after("120"), Some(120_000.0));
    assert_eq!(retry_after(" 0 "), Some(0.0));
    assert_eq!(retry_after_ms(None, js_sys::Date::now()), None);
    // A date in the future: its distance from now (second resolution), in each form.
    let at = js_sys::Date::now() + 10_000.0;
    let d = js_sys::Date::new(&at.into());
    let imf = String::from(d.to_utc_string()); // "Sun, 06 Nov 2094 08:49:37 GMT"
    let parts: Vec<&str> = imf.split(' ').collect();
    let (wd, day, mon, year, time) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let long_days = [
        ("Mon", "Monday"),
        ("Tue", "Tuesday"),
        ("Wed", "Wednesday"),
        ("Thu", "Thursday"),
        ("Fri", "Friday"),
        ("Sat", "Saturday"),
        ("Sun", "Sunday"),
    ];
    let long = long_days
        .iter()
        .find(|(s, _)| [*s, ","].concat() == wd)
        .unwrap()
        .1;
    let rfc850 = [
        long,
        ", ",
        day,
        "-",
        mon,
        "-",
        &year[2..],
        " ",
        time,
        " GMT",
    ]
    .concat();
    let short_day = day.trim_start_matches('0');
    let asctime = [
        &wd[..3],
        " ",
        mon,
        " ",
        &format!("{short_day:>2}"),
        " ",
        time,
        " ",
        year,
    ]
    .concat();
    for v in [&imf, &rfc850, &asctime] {
        let ms = retry_after(v).unwrap_or_else(|| panic!("{v:?} not read"));
        assert!((8_000.0..=10_000.0).contains(&ms), "{v:?}: {ms}");
    }
    // A date in the past is no delay at all.
    assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0.0));
    assert_eq!(retry_after("Sunday, 06-Nov-94 08:49:37 GMT"), Some(0.0));
    assert_eq!(retry_after("Sun Nov  6 08:49:37 1994"), Some(0.0));
    for v in ["", " ", "-1", "1.5", "+3", "soon", "Sun, 06 Nov 1994"] {
        assert_eq!(retry_after(v), None, "{v:?}");
    }
}
