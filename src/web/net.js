// Browser helpers for Web Locks and timers, where a few lines of JavaScript replace
// many calls across the wasm boundary. Each one catches what the browser can throw: an exception
// never unwinds through the wasm. Minified in the release package (scripts/build.mjs).

// Requests the Web Lock `name` and keeps it while the page lives. Undefined without
// navigator.locks; else a promise resolving true once the lock is held, false when refused.
export function holdLock(name) {
  let locks;
  try {
    locks = navigator.locks;
    if (typeof locks.request != 'function') return;
  } catch (_) {
    return;
  }
  return new Promise((resolve) => {
    try {
      // The callback's promise never settles: the lock goes only with the page.
      locks.request(name, () => (resolve(true), new Promise(() => {}))).catch(() => resolve(false));
    } catch (_) {
      resolve(false);
    }
  });
}

// Requests the Web Lock `name` only if it is free and, while holding it, calls `f()`
// synchronously. Resolves once the lock is released (or the request failed).
export function tryLock(name, f) {
  try {
    return navigator.locks.request(name, { ifAvailable: true }, (lock) => lock && f()).catch(() => {});
  } catch (_) {
    return Promise.resolve();
  }
}

// Calls `beat` every `ms` milliseconds, and `leave` when the page is discarded (`pagehide` not
// kept in the back/forward cache).
export function heartbeat(ms, beat, leave) {
  try {
    setInterval(beat, ms);
    addEventListener('pagehide', (e) => e.persisted || leave());
  } catch (_) {}
}
