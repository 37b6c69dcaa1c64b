//! Web Locks and the heartbeat fallback in real Chromium (`src/web/locks.rs`): two holders of one
//! lock name, a released lock, a page without `navigator.locks`, and the heartbeat's page-hide
//! rule.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use consent_analytics::web::locks::{heartbeat, LockManager};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
// Holds `name` from page code until `release(holder)`; resolves once held.
export async function holdFromPage(name) {
  let release, done;
  await new Promise((held) => {
    done = navigator.locks.request(name, () => (held(), new Promise((r) => (release = r))));
  });
  return { release, done };
}
// Releases a lock `holdFromPage` took; resolves once the browser let it go.
export async function release(holder) {
  holder.release();
  await holder.done;
}
// Takes `name` from page code and releases it at once.
export async function takeAndRelease(name) {
  await navigator.locks.request(name, () => {});
}
// Whether page code finds `name` held (an ifAvailable request gets no lock).
export async function heldForPage(name) {
  return await navigator.locks.request(name, { ifAvailable: true }, (lock) => lock === null);
}
export function hideLocks() {
  Object.defineProperty(navigator, 'locks', { value: undefined, configurable: true });
}
export function showLocks() {
  delete navigator.locks;
}
export function pagehide(persisted) {
  dispatchEvent(new PageTransitionEvent('pagehide', { persisted }));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = holdFromPage)]
    async fn hold_from_page(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = takeAndRelease)]
    async fn take_and_release(name: &str);
    #[wasm_bindgen(js_name = heldForPage)]
    async fn held_for_page(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = hideLocks)]
    fn hide_locks();
    #[wasm_bindgen(js_name = showLocks)]
    fn show_locks();
    fn pagehide(persisted: bool);
    async fn release(holder: &JsValue);
}

fn locks() -> LockManager {
    LockManager::get().expect("Chromium has navigator.locks")
}

#[wasm_bindgen_test]
async fn a_held_lock_is_not_available_to_a_second_holder() {
    let locks = locks();
    locks.hold("t:own").await.unwrap();
    // Held for the page's life: neither this client nor page code can take it.
    assert_eq!(locks.hold_if_available("t:own").await, Ok(false));
    assert_eq!(held_for_page("t:own").await, JsValue::TRUE);

    let holder = hold_from_page("t:other").await;
    assert_eq!(locks.hold_if_available("t:other").await, Ok(false));
    release(&holder).await;
    // Released by its holder: free, taken, then kept.
    assert_eq!(locks.hold_if_available("t:other").await, Ok(true));
    assert_eq!(held_for_page("t:other").await, JsValue::TRUE);
}

#[wasm_bindgen_test]
async fn an_absent_or_released_lock_is_free_and_then_kept() {
    let locks = locks();
    take_and_release("t:released").await;
    assert_eq!(locks.hold_if_available("t:released").await, Ok(true));
    assert_eq!(locks.hold_if_available("t:released").await, Ok(false));
    assert_eq!(locks.hold_if_available("t:never").await, Ok(true));
    assert_eq!(held_for_page("t:never").await, JsValue::TRUE);
}

#[wasm_bindgen_test]
fn without_navigator_locks_there_is_no_lock_manager() {
    hide_locks();
    let absent = LockManager::get().is_none();
    show_locks();
    assert!(absent);
    assert!(LockManager::get().is_some());
}

#[wasm_bindgen_test]
fn the_heartbeat_beats_at_once_and_leaves_only_when_the_page_is_discarded() {
    let (beats, left) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (b, l) = (beats.clone(), left.clone());
    heartbeat(
        60_000,
        move || b.set(b.get() + 1),
        move || l.set(l.get() + 1),
    );
    assert_eq!(beats.get(), 1);
    pagehide(true);
    assert_eq!(
        left.get(),
        0,
        "kept in the back/forward cache: may come back"
    );
    pagehide(false);
    assert_eq!(left.get(), 1);
}
