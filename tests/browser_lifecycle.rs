//! Page lifecycle events in real Chromium: `pagehide`, `visibilitychange`, `online`,
//! `offline`, `storage` and the page-local identity event each reach the handler with their
//! meaning, the identity event comes from a microtask, and dropping the listeners removes them.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use consent_analytics::web::lifecycle::{identity_changed, PageEvent, PageEvents, IDENTITY_EVENT};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::Event;

wasm_bindgen_test_configure!(run_in_browser);

/// Runs `code` as the body of a function in the page and returns what it returns.
fn js(code: &str) -> JsValue {
    Function::new_no_args(code)
        .call0(&JsValue::UNDEFINED)
        .expect("test script threw")
}

/// Listens to the page events, recording each one.
fn record() -> (PageEvents, Rc<RefCell<Vec<PageEvent>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    (PageEvents::listen(move |e| s.borrow_mut().push(e)), seen)
}

/// Dispatches a plain `kind` event on the window.
fn on_window(kind: &str) {
    let w = web_sys::window().unwrap();
    w.dispatch_event(&Event::new(kind).unwrap()).unwrap();
}

/// Dispatches `visibilitychange` on the document while `document.visibilityState` reads
/// `state`.
fn visibility_change(state: &str) {
    js(&[
        "Object.defineProperty(document, 'visibilityState', { get: () => '",
        state,
        "', configurable: true });
        try { document.dispatchEvent(new Event('visibilitychange')); }
        finally { delete document.visibilityState; }",
    ]
    .concat());
}

#[wasm_bindgen_test]
fn pagehide_and_a_change_to_hidden_mean_hidden() {
    let (events, seen) = record();
    on_window("pagehide");
    visibility_change("visible");
    assert_eq!(
        *seen.borrow(),
        [PageEvent::Hidden],
        "visible is not reported"
    );
    visibility_change("hidden");
    assert_eq!(*seen.borrow(), [PageEvent::Hidden, PageEvent::Hidden]);
    drop(events);
}

#[wasm_bindgen_test]
fn online_and_offline_are_reported_in_order() {
    let (events, seen) = record();
    on_window("offline");
    on_window("online");
    assert_eq!(*seen.borrow(), [PageEvent::Offline, PageEvent::Online]);
    drop(events);
}

#[wasm_bindgen_test]
fn a_storage_event_carries_the_key_another_tab_changed() {
    let (events, seen) = record();
    js(
        "dispatchEvent(new StorageEvent('storage', { key: 'ca:userId' }));
        dispatchEvent(new StorageEvent('storage', { key: null }));
        dispatchEvent(new Event('storage'));",
    );
    assert_eq!(
        *seen.borrow(),
        [
            PageEvent::StorageChanged(Some("ca:userId".into())),
            PageEvent::StorageChanged(None),
            PageEvent::StorageChanged(None),
        ]
    );
    drop(events);
}

#[wasm_bindgen_test]
async fn identity_changed_reaches_every_client_of_the_page_from_a_microtask() {
    let (a, seen_a) = record();
    let (b, seen_b) = record();
    // The page sees the event too, on the window.
    let page_saw = JsFuture::from(Promise::new(&mut |resolve, _| {
        let w = web_sys::window().unwrap();
        w.add_event_listener_with_callback(IDENTITY_EVENT, &resolve)
            .unwrap();
    }));
    identity_changed();
    assert!(seen_a.borrow().is_empty(), "not dispatched synchronously");
    page_saw.await.unwrap();
    assert_eq!(*seen_a.borrow(), [PageEvent::IdentityChanged]);
    assert_eq!(*seen_b.borrow(), [PageEvent::IdentityChanged]);
    drop((a, b));
}

#[wasm_bindgen_test]
fn dropping_the_listeners_removes_them() {
    let (events, seen) = record();
    let (other, seen_other) = record();
    drop(events);
    on_window("pagehide");
    visibility_change("hidden");
    on_window("online");
    on_window("offline");
    on_window("storage");
    on_window(IDENTITY_EVENT);
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    // Another client's listeners are untouched.
    assert_eq!(seen_other.borrow().len(), 6);
    drop(other);
    on_window("pagehide");
    assert_eq!(seen_other.borrow().len(), 6);
}
