//! Web Locks (`navigator.locks`) held for the page's life, and the heartbeat that stands in for
//! them where the browser has none. The relay uses them so that two open tabs never both
//! deliver one outbox entry (see `destinations/relay.rs`).
//!
//! web-sys marks `LockManager` unstable, so `request` is bound here with a small extern block.
//! A lock is held by returning a promise that never settles from the request's callback: the
//! browser releases it only when the page goes away.

use gloo_timers::callback::Interval;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The page's `navigator.locks`.
    #[derive(Clone)]
    pub type LockManager;

    /// `locks.request(name, callback)`: the promise of what the callback's promise settles
    /// with; throws or rejects when the browser refuses the request (an opaque origin).
    #[wasm_bindgen(method, catch, js_name = request)]
    fn request(this: &LockManager, name: &str, callback: &JsValue) -> Result<Promise, JsValue>;

    /// `locks.request(name, options, callback)`.
    #[wasm_bindgen(method, catch, js_name = request)]
    fn request_with_options(
        this: &LockManager,
        name: &str,
        options: &Object,
        callback: &JsValue,
    ) -> Result<Promise, JsValue>;
}

impl LockManager {
    /// The page's lock manager, if the browser has Web Locks (and lets this page use them).
    pub fn get() -> Option<LockManager> {
        let navigator = web_sys::window()?.navigator();
        let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
        let request = Reflect::get(&locks, &"request".into()).ok()?;
        request.is_function().then(|| locks.unchecked_into())
    }

    /// Waits for the lock `name` and keeps it for the page's life. Err when the browser refuses
    /// the request.
    pub async fn hold(&self, name: &str) -> Result<(), JsValue> {
        self.acquire(name, false).await.map(drop)
    }

    /// Takes the lock `name` for the page's life if nobody holds it now (`ifAvailable`):
    /// whether it was free. Err when the browser refuses the request.
    pub async fn hold_if_available(&self, name: &str) -> Result<bool, JsValue> {
        self.acquire(name, true).await
    }

    /// Requests `name` and resolves once the callback ran: with whether the lock was granted
    /// (always once granted without `if_available`).
    async fn acquire(&self, name: &str, if_available: bool) -> Result<bool, JsValue> {
        let mut granted_with = None;
        // The executor runs at once: `granted_with` is set before `new` returns.
        let granted = Promise::new(&mut |resolve: Function, _| granted_with = Some(resolve));
        let Some(resolve) = granted_with else {
            return Err("the lock promise did not start".into());
        };
        let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
            let held = !lock.is_null();
            let _ = resolve.call1(&JsValue::UNDEFINED, &held.into());
            if held {
                // Never settles: the lock goes only with the page.
                Promise::new(&mut |_, _| {}).into()
            } else {
                JsValue::UNDEFINED
            }
        });
        let requested = if if_available {
            let options = Object::new();
            Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE)?;
            self.request_with_options(name, &options, &callback)?
        } else {
            self.request(name, &callback)?
        };
        // `requested` settles once the lock is released (never, while held) or rejects when
        // the request is refused; the callback resolves `granted` before that.
        let first = Promise::race(&Array::of2(&granted, &requested));
        Ok(JsFuture::from(first).await?.as_bool().unwrap_or(false))
    }
}

/// The fallback without Web Locks: calls `beat` now and every `ms` milliseconds for the page's
/// life, and `leave` when the page is discarded (`pagehide` not kept in the back/forward
/// cache, where it may still come back and beat again).
pub fn heartbeat(ms: u32, mut beat: impl FnMut() + 'static, leave: impl Fn() + 'static) {
    beat();
    Interval::new(ms, beat).forget();
    let Some(window) = web_sys::window() else {
        return;
    };
    let on_hide = Closure::<dyn Fn(web_sys::Event)>::new(move |e: web_sys::Event| {
        let kept = e
            .dyn_ref::<web_sys::PageTransitionEvent>()
            .is_some_and(|e| e.persisted());
        if !kept {
            leave();
        }
    });
    if window
        .add_event_listener_with_callback("pagehide", on_hide.as_ref().unchecked_ref())
        .is_ok()
    {
        on_hide.forget();
    }
}
