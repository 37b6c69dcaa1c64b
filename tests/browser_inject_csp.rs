//! The script injector under a Content Security Policy in real Chromium: an inline script the
//! policy blocks fails as `script_load` instead of being reported loaded; one with the policy's
//! nonce runs. The policy is set once for this file's page (a `<meta>` CSP), so these tests have
//! a page of their own.
#![cfg(target_arch = "wasm32")]

use consent_analytics::error::ErrorKind;
use consent_analytics::script::{ScriptDescriptor, Source};
use consent_analytics::web::inject::load;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function enforce() {
  if (document.getElementById('bi-csp')) return;
  const m = document.createElement('meta');
  m.id = 'bi-csp';
  m.httpEquiv = 'Content-Security-Policy';
  m.content = "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval' 'nonce-bi-ok'";
  document.head.appendChild(m);
}
export function count(id) { return document.querySelectorAll('script[id="' + id + '"]').length; }
export function winGet(k) { return window[k]; }
"#)]
extern "C" {
    fn enforce();
    fn count(id: &str) -> u32;
    #[wasm_bindgen(js_name = winGet)]
    fn win_get(k: &str) -> JsValue;
}

fn inline(id: &str, text: &str) -> ScriptDescriptor {
    let mut d = ScriptDescriptor::src(id, "");
    d.source = Source::Text(text.into());
    d
}

#[wasm_bindgen_test]
async fn an_inline_script_the_policy_blocks_fails_as_script_load() {
    enforce();
    let d = inline("bi-csp-blocked", "window.__biCspBlocked=1");
    let err = load(&d, "test", None, 1000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ScriptLoad);
    assert_eq!(
        err.message,
        "script bi-csp-blocked was blocked by the Content Security Policy: inline"
    );
    assert!(win_get("__biCspBlocked").is_undefined(), "it did not run");
    assert_eq!(count("bi-csp-blocked"), 0, "the blocked element is removed");
}

#[wasm_bindgen_test]
async fn an_inline_script_with_the_policy_nonce_runs_and_loads() {
    enforce();
    let d = inline("bi-csp-nonce", "window.__biCspNonce=1");
    load(&d, "test", Some("bi-ok"), 1000).await.unwrap();
    assert_eq!(win_get("__biCspNonce").as_f64(), Some(1.0));
    assert_eq!(count("bi-csp-nonce"), 1);
}
