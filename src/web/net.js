// Browser helpers for the network, Web Locks and timers, where a few lines of JavaScript replace
// many calls across the wasm boundary. Each one catches what the browser can throw: an exception
// never unwinds through the wasm. Minified in the release package (scripts/build.mjs).

// The message of a thrown value, without calling page code that could throw again.
const text = (e) => {
  try {
    return typeof e == 'string' ? e : typeof (e && e.message) == 'string' ? e.message : String(e);
  } catch (_) {
    return 'unknown error';
  }
};

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

// For each owner in turn, requests the Web Lock `base + owner` only if it is free and, while
// holding it, calls `f(index)` synchronously. Resolves once every request is done.
export function tryLocks(base, owners, f) {
  return owners.reduce(
    (p, owner, i) =>
      p.then(() => {
        try {
          return navigator.locks.request(base + owner, { ifAvailable: true }, (lock) => lock && f(i)).catch(() => {});
        } catch (_) {}
      }),
    Promise.resolve(),
  );
}

// navigator.sendBeacon(url, body): whether the browser took it; false when it is missing.
export function sendBeacon(url, body) {
  try {
    return navigator.sendBeacon(url, body) === true;
  } catch (_) {
    return false;
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

// GETs `url`, giving up after `ms` milliseconds. Resolves [status, body text] for a 2xx answer
// ([status, null] when the body cannot be read), [status] for another status, [] on timeout;
// rejects with a message when the request fails.
export function getText(url, ms) {
  return new Promise((resolve, reject) => {
    if (typeof fetch != 'function') throw 'fetch is not available';
    const timer = setTimeout(() => resolve([]), ms);
    fetch(url)
      .then((r) => (r.ok ? r.text().then((t) => [r.status, t], () => [r.status, null]) : [r.status]))
      .then(resolve, reject)
      .finally(() => clearTimeout(timer));
  }).catch((e) => Promise.reject(text(e)));
}
