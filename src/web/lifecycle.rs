//! The page's lifecycle and window events a client reacts to: the page being hidden or left
//! (hand over what is queued), the browser going online or offline, and the stored identity
//! changing in another tab (`storage`) or in another client of this page (a page-local
//! [`IDENTITY_EVENT`]).
//!
//! Listeners are web-sys `EventTarget` listeners held by an [`EventListener`] handle that
//! removes its listener when dropped, so a client's listeners live exactly as long as it does.

use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Event, EventTarget, StorageEvent, VisibilityState};

/// The event a client dispatches on the window when it changed the stored identity, so that
/// the other clients of the same page re-read it (other tabs learn it from `storage`).
pub const IDENTITY_EVENT: &str = "consent-analytics:identity";

/// An event listener on a target, removed from it when the handle is dropped (the shape of
/// gloo-events' `EventListener`).
pub struct EventListener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl EventListener {
    /// Calls `f` with every `kind` event reaching `target` until the handle is dropped. A target
    /// that refuses the listener (it throws) is left without it.
    pub fn new(target: &EventTarget, kind: &'static str, f: impl FnMut(Event) + 'static) -> Self {
        let callback = Closure::<dyn FnMut(Event)>::new(f);
        let _ = target.add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref());
        EventListener {
            target: target.clone(),
            kind,
            callback,
        }
    }
}

impl Drop for EventListener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.callback.as_ref().unchecked_ref());
    }
}

/// What happened to the page, as a client reacts to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageEvent {
    /// The page is being left (`pagehide`) or hidden (`visibilitychange` to hidden, the last
    /// moment a mobile browser reliably gives): what is queued should be handed over now.
    Hidden,
    /// The browser reports being online again (`online`).
    Online,
    /// The browser reports being offline (`offline`).
    Offline,
    /// Another tab changed Web Storage: the key it changed, `None` when it cleared the storage
    /// (`storage`).
    StorageChanged(Option<String>),
    /// Another client of this page changed the stored identity ([`IDENTITY_EVENT`]).
    IdentityChanged,
}

/// A client's listeners for the page events ([`PageEvent`]); dropping it removes them.
pub struct PageEvents {
    _listeners: Vec<EventListener>,
}

impl PageEvents {
    /// Calls `handler` with each page event as the browser dispatches it. Listens, in this
    /// order, to `pagehide` on the window, `visibilitychange` on the document (only a change
    /// to hidden is reported), then `online`, `offline`, `storage` and [`IDENTITY_EVENT`] on
    /// the window. Without a window (no page) nothing is listened to.
    pub fn listen(handler: impl Fn(PageEvent) + 'static) -> Self {
        let Some(window) = web_sys::window() else {
            return PageEvents {
                _listeners: Vec::new(),
            };
        };
        let handler: Rc<dyn Fn(PageEvent)> = Rc::new(handler);
        let on = |target: &EventTarget, kind, meaning: fn(&Event) -> Option<PageEvent>| {
            let handler = handler.clone();
            EventListener::new(target, kind, move |e| {
                if let Some(m) = meaning(&e) {
                    handler(m);
                }
            })
        };
        let mut listeners = vec![on(&window, "pagehide", |_| Some(PageEvent::Hidden))];
        if let Some(document) = window.document() {
            listeners.push(on(&document, "visibilitychange", |_| {
                hidden().then_some(PageEvent::Hidden)
            }));
        }
        listeners.extend([
            on(&window, "online", |_| Some(PageEvent::Online)),
            on(&window, "offline", |_| Some(PageEvent::Offline)),
            on(&window, "storage", |e| {
                Some(PageEvent::StorageChanged(
                    e.dyn_ref::<StorageEvent>().and_then(StorageEvent::key),
                ))
            }),
            on(&window, IDENTITY_EVENT, |_| {
                Some(PageEvent::IdentityChanged)
            }),
        ]);
        PageEvents {
            _listeners: listeners,
        }
    }
}

/// Whether the document is hidden now (`document.visibilityState == "hidden"`).
fn hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.visibility_state() == VisibilityState::Hidden)
}

/// Tells every client of this page, this one included, that the stored identity changed: an
/// [`IDENTITY_EVENT`] on the window, dispatched from a microtask (after the change is stored
/// and the current call returned), on which each re-reads it as other tabs do on `storage`.
pub fn identity_changed() {
    spawn_local(async {
        let Some(window) = web_sys::window() else {
            return;
        };
        if let Ok(e) = Event::new(IDENTITY_EVENT) {
            let _ = window.dispatch_event(&e);
        }
    });
}
