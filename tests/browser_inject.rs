//! The script injector in real Chromium: element attributes, nonce, SRI, head/body, id dedupe,
//! load / error / timeout outcomes, and refused URLs that inject nothing.
#![cfg(target_arch = "wasm32")]

use consent_analytics::error::DeliveryError;
use consent_analytics::error::ErrorKind;
use consent_analytics::script::ScriptDescriptor;
use consent_analytics::web::inject::{
    load, outcome, parse_descriptor, remove_all, remove_revoked, start,
};
use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Injects `d` for owner `OWNER` as the library's `inject` does (its promise, then
/// `outcome`) and awaits it.
async fn inject(
    d: &ScriptDescriptor,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> Result<(), DeliveryError> {
    inject_for(OWNER, d, default_nonce, timeout_ms).await
}

/// The destination id the tests inject for.
const OWNER: &str = "test";

/// [`inject`] for another owner.
async fn inject_for(
    owner: &str,
    d: &ScriptDescriptor,
    default_nonce: Option<&str>,
    timeout_ms: u64,
) -> Result<(), DeliveryError> {
    outcome(JsFuture::from(start(d, owner, default_nonce, timeout_ms)).await)
}

#[wasm_bindgen(inline_js = r#"
export function selfUrl() { return import.meta.url; }
export async function sri(url) {
  const b = await (await fetch(url)).arrayBuffer();
  const h = await crypto.subtle.digest('SHA-384', b);
  return 'sha384-' + btoa(String.fromCharCode(...new Uint8Array(h)));
}
export function byId(id) { return document.getElementById(id); }
export function count(id) { return document.querySelectorAll('script[id="' + id + '"]').length; }
export function winGet(k) { return window[k]; }
export function own(id, text) {
  const s = document.createElement('script');
  s.id = id; s.type = 'text/plain'; s.textContent = text;
  document.head.appendChild(s);
}
export function ownElement(tag, id, src) {
  const e = document.createElement(tag);
  e.id = id;
  if (src) { e.type = 'module'; e.src = src; }
  document.body.appendChild(e);
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = selfUrl)]
    fn self_url() -> String;
    fn sri(url: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = byId)]
    fn by_id(id: &str) -> JsValue;
    fn count(id: &str) -> u32;
    #[wasm_bindgen(js_name = winGet)]
    fn win_get(k: &str) -> JsValue;
    fn own(id: &str, text: &str);
    #[wasm_bindgen(js_name = ownElement)]
    fn own_element(tag: &str, id: &str, src: Option<&str>);
}

fn desc(json: &str) -> ScriptDescriptor {
    let v = js_sys::JSON::parse(json).unwrap();
    parse_descriptor(&v, "t", false).unwrap()
}

fn attr(el: &JsValue, name: &str) -> Option<String> {
    el.unchecked_ref::<web_sys::Element>().get_attribute(name)
}

fn prop(el: &JsValue, name: &str) -> JsValue {
    Reflect::get(el, &name.into()).unwrap()
}

fn parent_tag(el: &JsValue) -> String {
    el.unchecked_ref::<web_sys::Element>()
        .parent_element()
        .map(|p| p.tag_name())
        .unwrap_or_default()
}

/// A same-origin module script URL that really exists (this test's own JS snippet), made unique
/// so the browser fetches it afresh.
fn module_url(tag: &str) -> String {
    [&self_url(), "?", tag].concat()
}

#[wasm_bindgen_test]
async fn inline_script_gets_id_nonce_and_attributes_runs_once_in_body() {
    let d = desc(
        r#"{"id":"bi-inline","textContent":"window.__biInline=(window.__biInline||0)+1",
            "nonce":"own-nonce","attributes":{"data-purpose":"test","referrerpolicy":"no-referrer"},
            "target":"body"}"#,
    );
    inject(&d, Some("default-nonce"), 1000).await.unwrap();
    let el = by_id("bi-inline");
    assert!(!el.is_null(), "element injected");
    assert_eq!(parent_tag(&el), "BODY");
    assert_eq!(prop(&el, "nonce").as_string().as_deref(), Some("own-nonce"));
    assert_eq!(attr(&el, "data-purpose").as_deref(), Some("test"));
    assert_eq!(attr(&el, "referrerpolicy").as_deref(), Some("no-referrer"));
    assert_eq!(win_get("__biInline").as_f64(), Some(1.0));
    // The same id again: not injected, not run again.
    inject(&d, Some("default-nonce"), 1000).await.unwrap();
    assert_eq!(count("bi-inline"), 1);
    assert_eq!(win_get("__biInline").as_f64(), Some(1.0));
}

#[wasm_bindgen_test]
async fn default_nonce_applies_and_head_is_the_default_target() {
    let d = desc(r#"{"id":"bi-default","textContent":"window.__biDefault=1"}"#);
    inject(&d, Some("config-nonce"), 1000).await.unwrap();
    let el = by_id("bi-default");
    assert_eq!(parent_tag(&el), "HEAD");
    assert_eq!(
        prop(&el, "nonce").as_string().as_deref(),
        Some("config-nonce")
    );
    // Without either, no nonce attribute at all.
    let d = desc(r#"{"id":"bi-nononce","textContent":"1"}"#);
    inject(&d, None, 1000).await.unwrap();
    assert_eq!(attr(&by_id("bi-nononce"), "nonce"), None);
}

#[wasm_bindgen_test]
async fn an_element_the_page_owns_is_neither_duplicated_nor_removed() {
    // The page's own copy of that script (same text; `text/plain` here, so it never ran).
    own("bi-owned", "window.__biOwned=1");
    let d = desc(r#"{"id":"bi-owned","textContent":"window.__biOwned=1"}"#);
    inject(&d, None, 1000).await.unwrap();
    assert_eq!(count("bi-owned"), 1);
    assert!(win_get("__biOwned").is_undefined(), "ours was not injected");
    remove_revoked(OWNER, std::slice::from_ref(&d));
    remove_all(OWNER, std::slice::from_ref(&d));
    assert_eq!(count("bi-owned"), 1, "the page's element stays");
}

#[wasm_bindgen_test]
async fn src_script_gets_async_defer_integrity_crossorigin_and_resolves_on_load() {
    let url = module_url("sri-ok");
    let hash = JsFuture::from(sri(&url))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let mut d = ScriptDescriptor::src("bi-src", &url);
    d.is_async = false;
    d.defer = true;
    d.integrity = Some(hash.clone());
    d.cross_origin = Some("anonymous".into());
    d.attributes.push(("type".into(), "module".into()));
    inject(&d, Some("n"), 5000).await.unwrap();
    let el = by_id("bi-src");
    assert_eq!(prop(&el, "src").as_string().as_deref(), Some(url.as_str()));
    assert_eq!(prop(&el, "async").as_bool(), Some(false));
    assert_eq!(prop(&el, "defer").as_bool(), Some(true));
    assert_eq!(attr(&el, "integrity"), Some(hash));
    assert_eq!(attr(&el, "crossorigin").as_deref(), Some("anonymous"));
    assert_eq!(prop(&el, "nonce").as_string().as_deref(), Some("n"));
    // Loaded once: a second inject resolves at once without a new element.
    inject(&d, None, 5000).await.unwrap();
    assert_eq!(count("bi-src"), 1);
}

#[wasm_bindgen_test]
async fn a_wrong_integrity_hash_fails_as_script_load_and_leaves_no_element() {
    let mut d = ScriptDescriptor::src("bi-badsri", &module_url("sri-bad"));
    d.integrity =
        Some("sha384-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    d.cross_origin = Some("anonymous".into());
    d.attributes.push(("type".into(), "module".into()));
    let err = inject(&d, None, 5000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(err.message.contains("bi-badsri") && err.message.contains("failed to load"));
    assert_eq!(count("bi-badsri"), 0);
}

#[wasm_bindgen_test]
async fn an_unreachable_script_fails_naming_it_and_can_be_tried_again() {
    let d = ScriptDescriptor::src("bi-down", "https://127.0.0.1:1/x.js");
    let err = inject(&d, None, 10_000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(err.message.contains("failed to load"), "{}", err.message);
    assert!(
        err.message.contains("https://127.0.0.1:1/x.js"),
        "{}",
        err.message
    );
    assert_eq!(count("bi-down"), 0, "a failed element is removed");
    // Not remembered as loaded: the next attempt injects (and fails) again.
    let err = inject(&d, None, 10_000).await.unwrap_err();
    assert!(err.message.contains("failed to load"));
}

#[wasm_bindgen_test]
async fn a_script_slower_than_the_timeout_fails_as_timed_out_and_a_retry_waits_on_the_same_element()
{
    let mut d = ScriptDescriptor::src("bi-slow", &module_url("timeout"));
    d.attributes.push(("type".into(), "module".into()));
    let err = inject(&d, None, 0).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(err.message.contains("bi-slow timed out"), "{}", err.message);
    // Still loading: the element stays, so a retry never runs the script a second time.
    assert_eq!(count("bi-slow"), 1);
    let el = by_id("bi-slow");
    inject(&d, None, 10_000).await.unwrap();
    assert_eq!(count("bi-slow"), 1);
    assert!(
        by_id("bi-slow") == el,
        "the element in flight was adopted, not replaced"
    );
}

#[wasm_bindgen_test]
async fn refused_urls_inject_nothing_and_name_the_url() {
    for (i, url) in [
        "javascript:alert(1)",
        "data:text/javascript,alert(1)",
        "http://example.com/x.js",
    ]
    .into_iter()
    .enumerate()
    {
        let id = ["bi-refused-", &i.to_string()].concat();
        let v = js_sys::Object::new();
        Reflect::set(&v, &"id".into(), &id.as_str().into()).unwrap();
        Reflect::set(&v, &"src".into(), &url.into()).unwrap();
        let err = parse_descriptor(&v, "cfg.scripts[0]", false).unwrap_err();
        assert!(err.contains(url), "{err}");
        assert!(
            err.starts_with("cfg.scripts[0].src: script URL refused"),
            "{err}"
        );
        // Straight to the injector: refused too.
        let err = inject(&ScriptDescriptor::src(&id, url), None, 1000)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ScriptLoad);
        assert!(err.message.contains(url), "{}", err.message);
        assert_eq!(count(&id), 0, "nothing injected for {url}");
    }
}

#[wasm_bindgen_test]
async fn revocation_keeps_persistent_scripts_and_unload_allows_a_new_injection() {
    let keep = desc(
        r#"{"id":"bi-keep","textContent":"window.__biKeep=(window.__biKeep||0)+1",
            "persistAfterConsentRevoked":true}"#,
    );
    let drop = desc(r#"{"id":"bi-drop","textContent":"window.__biDrop=(window.__biDrop||0)+1"}"#);
    let both = [keep.clone(), drop.clone()];
    for d in &both {
        inject(d, None, 1000).await.unwrap();
    }
    remove_revoked(OWNER, &both);
    assert_eq!(count("bi-keep"), 1);
    assert_eq!(count("bi-drop"), 0);
    // Re-granted: the code already ran, so nothing is injected again.
    inject(&drop, None, 1000).await.unwrap();
    assert_eq!(count("bi-drop"), 0);
    assert_eq!(win_get("__biDrop").as_f64(), Some(1.0));
    // Unloaded: everything goes, and a later load injects afresh.
    remove_all(OWNER, &both);
    assert_eq!(count("bi-keep"), 0);
    inject(&drop, None, 1000).await.unwrap();
    assert_eq!(count("bi-drop"), 1);
    assert_eq!(win_get("__biDrop").as_f64(), Some(2.0));
}

#[wasm_bindgen_test]
fn descriptors_with_unknown_keys_or_not_exactly_one_source_are_refused() {
    let bad =
        |json: &str| parse_descriptor(&js_sys::JSON::parse(json).unwrap(), "p", false).unwrap_err();
    assert_eq!(
        bad(r#"{"id":"a","src":"/a.js","sirc":1}"#),
        "unknown option p.sirc"
    );
    assert!(bad(r#"{"id":"a"}"#).contains("exactly one of src and textContent"));
    assert!(bad(r#"{"id":"a","src":"/a.js","textContent":"1"}"#).contains("exactly one"));
    assert!(bad(r#"{"src":"/a.js"}"#).contains("p.id is required"));
    assert!(bad(r#"{"id":"a","src":"/a.js","target":"footer"}"#).contains("p.target"));
    assert!(bad(r#"{"id":"a","src":"/a.js","attributes":{"x":1}}"#).contains("p.attributes"));
    // What the descriptor's own fields set cannot come in through `attributes`: an inline
    // script with `attributes.src` would load code the URL policy never saw.
    assert_eq!(
        bad(r#"{"id":"a","textContent":"","attributes":{"SRC":"data:text/javascript,1"}}"#),
        "p.attributes.SRC is not allowed: use the descriptor's own field"
    );
    for k in ["id", "nonce", "integrity", "crossOrigin", "async", "defer"] {
        let json = [
            r#"{"id":"a","src":"/a.js","attributes":{""#,
            k,
            r#"":"x"}}"#,
        ]
        .concat();
        assert!(bad(&json).contains("is not allowed"), "{k}");
    }
}

#[wasm_bindgen_test]
async fn a_script_two_owners_share_stays_until_neither_uses_it() {
    let d =
        desc(r#"{"id":"bi-shared","textContent":"window.__biShared=(window.__biShared||0)+1"}"#);
    inject_for("a", &d, None, 1000).await.unwrap();
    inject_for("b", &d, None, 1000).await.unwrap();
    assert_eq!(win_get("__biShared").as_f64(), Some(1.0), "injected once");
    // One owner's revocation or unload leaves what the other still uses.
    remove_revoked("a", std::slice::from_ref(&d));
    assert_eq!(count("bi-shared"), 1);
    remove_all("a", std::slice::from_ref(&d));
    assert_eq!(count("bi-shared"), 1);
    // The last one's revocation removes it.
    remove_revoked("b", std::slice::from_ref(&d));
    assert_eq!(count("bi-shared"), 0);
}

#[wasm_bindgen_test]
async fn an_unload_while_another_owner_uses_a_script_forgets_it_once_the_last_one_drops_it() {
    let d =
        desc(r#"{"id":"bi-forget","textContent":"window.__biForget=(window.__biForget||0)+1"}"#);
    inject_for("a", &d, None, 1000).await.unwrap();
    inject_for("b", &d, None, 1000).await.unwrap();
    // `a` is unloaded: `b` still uses the element.
    remove_all("a", std::slice::from_ref(&d));
    assert_eq!(count("bi-forget"), 1);
    // `b` loses consent: the element goes, and so does the record `a`'s unload asked to drop,
    // so `a`'s next load injects it afresh.
    remove_revoked("b", std::slice::from_ref(&d));
    assert_eq!(count("bi-forget"), 0);
    inject_for("a", &d, None, 1000).await.unwrap();
    assert_eq!(count("bi-forget"), 1);
    assert_eq!(win_get("__biForget").as_f64(), Some(2.0));
}

#[wasm_bindgen_test]
async fn a_script_that_404s_fails_to_load_and_leaves_no_element() {
    let url = web_sys::Url::new_with_base("/bi-missing.js?404", &self_url())
        .unwrap()
        .href();
    let d = ScriptDescriptor::src("bi-404", &url);
    let err = inject(&d, None, 10_000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(
        err.message.contains("script bi-404 failed to load") && err.message.contains(&url),
        "{}",
        err.message
    );
    assert_eq!(count("bi-404"), 0);
}

#[wasm_bindgen_test]
async fn an_id_taken_by_another_element_of_the_page_is_a_clash_not_a_load() {
    own_element("div", "bi-app", None);
    let inline = desc(r#"{"id":"bi-app","textContent":"window.__biApp=1"}"#);
    let err = inject(&inline, None, 1000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(
        err.message.contains("bi-app") && err.message.contains("<div>"),
        "{}",
        err.message
    );
    let src = ScriptDescriptor::src("bi-app", &module_url("clash"));
    let err = inject(&src, None, 1000).await.unwrap_err();
    assert!(err.message.contains("<div>"), "{}", err.message);
    assert!(win_get("__biApp").is_undefined(), "nothing ran");
    assert_eq!(count("bi-app"), 0, "no script element with that id");
    assert!(!by_id("bi-app").is_null(), "the page's element stays");
    // A script of the page with another src under that id: a clash too, naming it.
    let other = module_url("other");
    own_element("script", "bi-other", Some(&other));
    let err = inject(
        &ScriptDescriptor::src("bi-other", &module_url("mine")),
        None,
        1000,
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .contains(&["<script src=\"", &other, "\">"].concat()),
        "{}",
        err.message
    );
    // The page's element is not removed by the owner it failed for.
    remove_all(
        OWNER,
        &[ScriptDescriptor::src("bi-other", &module_url("mine"))],
    );
    assert_eq!(count("bi-other"), 1);
}

#[wasm_bindgen_test]
async fn a_page_script_with_the_same_src_counts_once_the_document_has_loaded() {
    let url = module_url("page-copy");
    own_element("script", "bi-page-copy", Some(&url));
    inject(&ScriptDescriptor::src("bi-page-copy", &url), None, 5000)
        .await
        .unwrap();
    assert_eq!(count("bi-page-copy"), 1, "not injected a second time");
}

#[wasm_bindgen_test]
async fn concurrent_owners_share_one_load_of_one_element() {
    let mut d = ScriptDescriptor::src("bi-concurrent", &module_url("concurrent"));
    d.attributes.push(("type".into(), "module".into()));
    // Both started before either is awaited.
    let a = load(&d, "a", None, 10_000);
    let b = load(&d, "b", None, 10_000);
    assert_eq!(count("bi-concurrent"), 1);
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(count("bi-concurrent"), 1);
    // Shared: one owner's revocation leaves it for the other.
    remove_revoked("a", std::slice::from_ref(&d));
    assert_eq!(count("bi-concurrent"), 1);
    remove_revoked("b", std::slice::from_ref(&d));
    assert_eq!(count("bi-concurrent"), 0);
}

#[wasm_bindgen_test]
async fn an_attribute_the_dom_refuses_fails_the_load_with_its_message() {
    let mut d = desc(r#"{"id":"bi-badattr","textContent":"window.__biBadAttr=1"}"#);
    d.attributes.push(("not a name".into(), "x".into()));
    let err = inject(&d, None, 1000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert!(
        err.message
            .starts_with("script bi-badattr failed: script injection refused: "),
        "{}",
        err.message
    );
    assert_eq!(count("bi-badattr"), 0);
    assert!(win_get("__biBadAttr").is_undefined());
}
