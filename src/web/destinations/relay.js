// Browser helpers of the relay destination (src/web/destinations/relay.rs): Web Locks, the
// heartbeat fallback and sendBeacon. Each one catches what the browser can throw: an exception
// never unwinds through the wasm. Minified in the release package (scripts/build.mjs).

// Takes this page's Web Lock `base + own` for the page's life, then asks `f` which owners hold
// entries and calls `f(index)` for each one whose page is gone; settles when done. `f` is the
// relay's one callback: `f(list)` pushes the other owners' ids (oldest first) onto the array
// `list`; `f(i)` adopts owner `i`; `f(-1)` records a heartbeat, `f(-2)` removes it.
// With navigator.locks, an owner is gone when its lock is free (`f(i)` runs while holding it,
// and the lock stays held); when this page's lock request is refused, it rejects and nothing is
// adopted. Without it, the
// page beats now and every `ms` milliseconds, removes its heartbeat when it is discarded
// (`pagehide` not kept in the back/forward cache), and `f(i)` is called for every owner (`f`
// decides from heartbeats).
export async function claimOutbox(base, own, ms, f) {
  const owners = () => {
    const list = [];
    f(list);
    return list;
  };
  let locks;
  try {
    locks = navigator.locks;
    if (typeof locks.request != 'function') locks = 0;
  } catch (_) {
    locks = 0;
  }
  if (!locks) {
    f(-1);
    try {
      setInterval(() => f(-1), ms);
      addEventListener('pagehide', (e) => e.persisted || f(-2));
    } catch (_) {}
    owners().forEach((_, i) => f(i));
    return;
  }
  // The callback's promise never settles: the lock goes only with the page.
  await new Promise((resolve, reject) => locks.request(base + own, () => (resolve(), new Promise(() => {}))).catch(reject));
  // An adopted owner's lock is then kept for this page's life, as its own: another tab that
  // loaded at the same moment may not see the re-keyed entries in its localStorage yet, and
  // must not find the old owner free and deliver them too.
  for (const [i, owner] of owners().entries()) {
    try {
      await new Promise((resolve, reject) =>
        locks
          .request(base + owner, { ifAvailable: true }, (lock) => {
            resolve();
            return lock && (f(i), new Promise(() => {}));
          })
          .catch(reject),
      );
    } catch (_) {}
  }
}

// navigator.sendBeacon(url, body): whether the browser took it; false when it is missing.
export function sendBeacon(url, body) {
  try {
    return navigator.sendBeacon(url, body) === true;
  } catch (_) {
    return false;
  }
}

// Whether the browser has navigator.sendBeacon.
export const canBeacon = () => typeof navigator.sendBeacon == 'function';

// A new headers object: Content-Type JSON and, for a writeKey, Authorization: 'Basic ' and the
// base64 of the key's UTF-8 bytes and ':'.
export function baseHeaders(key) {
  const h = { 'Content-Type': 'application/json' };
  if (key != null) {
    let bytes = '';
    for (const b of new TextEncoder().encode(key + ':')) bytes += String.fromCharCode(b);
    h.Authorization = 'Basic ' + btoa(bytes);
  }
  return h;
}

// Sets header `name` to `value` on the plain object `h`, first removing any key that names the
// same header in another letter case.
export function setHeader(h, name, value) {
  for (const k in h) if (k.toLowerCase() == name.toLowerCase()) delete h[k];
  h[name] = value;
}
