// Browser helpers the wasm calls where a few lines of JavaScript replace many calls across the
// wasm boundary. Each one catches what page values can throw: an exception never unwinds
// through the wasm. Minified in the release package (scripts/build.mjs).

// The message of a thrown value, without calling page code that could throw again.
const text = (e) => {
  try {
    return typeof e == 'string' ? e : typeof (e && e.message) == 'string' ? e.message : String(e);
  } catch (_) {
    return 'unknown error';
  }
};

// Where `v` holds a value JSON cannot carry (function, symbol, BigInt, a cycle, nesting over 64
// levels, a value whose getter throws): a message naming the path from `path`, else undefined.
// Objects with a toJSON method are left to it.
export function jsonProblem(v, path) {
  const stack = [];
  const walk = (v, p) => {
    const t = typeof v;
    if (t == 'function' || t == 'symbol' || t == 'bigint') {
      return `${p} is a ${t == 'bigint' ? 'BigInt' : t}, which JSON cannot carry`;
    }
    if (t != 'object' || v === null) return;
    let list;
    try {
      if (v.toJSON !== undefined) return;
    } catch (_) {}
    if (stack.includes(v)) return `${p} is a circular reference`;
    if (stack.length > 64) return `${p} is nested too deeply`;
    try {
      list = Array.isArray(v) ? Array.from(v, (x, i) => [`[${i}]`, x]) : Object.entries(v).map(([k, x]) => [`.${k}`, x]);
    } catch (e) {
      return `${p}: value could not be read: ${text(e)}`;
    }
    stack.push(v);
    for (const [k, x] of list) {
      const r = walk(x, p + k);
      if (r) return r;
    }
    stack.pop();
  };
  return walk(v, path);
}

// The time now as an ISO-8601 string (2026-11-29T20:22:31.123Z).
export const isoNow = () => new Date().toISOString();

// A Date, or a date string `Date` can read, as an ISO-8601 UTC string with milliseconds;
// undefined for anything else (an invalid date, another type).
export function isoDate(v) {
  try {
    const d = v instanceof Date ? v : typeof v == 'string' && v ? new Date(v) : NaN;
    return isNaN(d) ? undefined : d.toISOString();
  } catch (_) {}
}

// `url` resolved against the document's base URL: [href, protocol, the page's origin], or
// undefined when it is not a valid URL.
export function resolveUrl(url) {
  try {
    const u = new URL(url, document.baseURI);
    return [u.href, u.protocol, location.origin];
  } catch (_) {}
}

// Load outcomes of the scripts this library injected, by element id: promises of undefined
// once loaded, or of why it failed ('timed out', 'failed to load', 'failed: <message>').
const loads = new Map();

// The owners using each script id (destination ids; '' for remote scripts): an element goes
// only when the last of them drops it.
const users = new Map();

// Script ids to forget once their last owner drops them (see dropScript).
const forgets = new Set();

// The element with this id, or null (also when the document throws).
const byId = (id) => {
  try {
    return document.getElementById(id);
  } catch (_) {
    return null;
  }
};

// Injects <script id> with `source`: the URL of `src` as resolved (already checked), or the
// inline code when `src` is null. `flags`: 1 async, 2 defer, 4 under body (else head); `attrs`:
// [name, value, name, value, ...] (nonce, SRI, extra ones). Not injected when this library
// already injected one with this id (its outcome is shared) or the document has an element with
// this id (resolves at once), nor when `refused` (the URL policy's message) is given. Resolves
// undefined once loaded (at once for inline code), else the failure message naming the script
// by id and `src`; a failed element is removed and forgotten, so a later call injects it again.
// Never rejects.
export function injectScript(owner, id, src, source, refused, flags, attrs, timeoutMs) {
  let u = users.get(id);
  if (!u) users.set(id, (u = new Set()));
  u.add(owner);
  // Used again: an unload's request to forget it (dropScript) no longer applies.
  forgets.delete(id);
  let p = loads.get(id);
  if (!p) {
    if (byId(id)) return Promise.resolve();
    if (refused != null) return Promise.resolve(refused);
    p = new Promise((resolve, reject) => {
      const d = document;
      const el = d.createElement('script');
      el.id = id;
      for (let i = 0; i < attrs.length; i += 2) {
        try {
          el.setAttribute(attrs[i], attrs[i + 1]);
        } catch (_) {}
      }
      const parent = (flags & 4 ? d.body : d.head) || d.documentElement;
      if (src == null) {
        el.text = source;
        parent.appendChild(el);
        return resolve();
      }
      el.async = !!(flags & 1);
      el.defer = !!(flags & 2);
      el.src = source;
      const end = (why) => {
        clearTimeout(timer);
        if (why) {
          el.remove();
          reject(why);
        } else resolve();
      };
      const timer = setTimeout(() => end('timed out'), timeoutMs);
      el.onload = () => end();
      el.onerror = () => end('failed to load');
      parent.appendChild(el);
    }).catch((e) => {
      if (loads.get(id) == p) loads.delete(id);
      return e == 'timed out' || e == 'failed to load' ? e : `failed: script injection refused: ${text(e)}`;
    });
    loads.set(id, p);
  }
  return p.then((why) => why && `script ${id} ${why}: ${src ?? 'inline'}`);
}

// `owner` no longer uses the script with this id: once no owner does, removes the element this
// library injected (none when the page owns it). `forget` (an unload): also forgets it, so a
// later injectScript injects it again, when the last owner drops it if others still use it.
export function dropScript(owner, id, forget) {
  try {
    const u = users.get(id);
    u?.delete(owner);
    if (forget) forgets.add(id);
    if (u?.size) return;
    if (forgets.delete(id) ? loads.delete(id) : loads.has(id)) byId(id)?.remove();
  } catch (_) {}
}

// What `hook` resolves to when the object has no such method.
const NO_HOOK = Symbol();

// Calls `obj[name](a, b)` and resolves with what it returns (a returned promise is awaited), or
// NO_HOOK when there is no such method (also when reading it throws); a throw or rejection
// rejects with the thrown value.
const hook = (obj, name, a, b) =>
  new Promise((resolve) => {
    let f;
    try {
      f = obj[name];
    } catch (_) {}
    resolve(typeof f == 'function' ? f.call(obj, a, b) : NO_HOOK);
  });

// `hook` for the wasm: resolves what it returns, or undefined when there is no such method.
export function callHook(obj, name, a, b) {
  return hook(obj, name, a, b).then((v) => (v === NO_HOOK ? undefined : v));
}

// Calls `onError(error, event being delivered)` for the delivery of `at` (see `deliverEvents`)
// unless it was told already; resolves when that is done.
const tell = async (obj, at, e) => {
  if (!at[1]) {
    at[1] = 1;
    await hook(obj, 'onError', e, at[0]).catch(() => {});
  }
};

// Delivers one event to a JavaScript destination: `onBeforeEvent` gets a copy parsed from
// `json` and may return a changed event, or null to skip it; then the `kind` hook with
// `{ destination: id }`, then `onAfterEvent(event, result)`, not awaited: the event is
// delivered whatever it does, or however long it takes. Resolves when done; on a failure
// it awaits `onError(error, event)` and rejects with the original error. Once the delivery of
// `at` failed or timed out, the hooks still running are not followed by others.
const deliverEvent = async (obj, id, kind, payload, json, at) => {
  let hasBefore = false;
  try {
    hasBefore = typeof obj.onBeforeEvent == 'function';
  } catch (_) {}
  at[0] = payload;
  try {
    if (hasBefore) {
      const copy = JSON.parse(json);
      const v = await hook(obj, 'onBeforeEvent', copy);
      if (v === null || at[1]) return;
      payload = at[0] = v !== NO_HOOK && typeof v == 'object' ? v : copy;
    }
    const r = await hook(obj, kind, payload, { destination: id });
    if (!at[1]) hook(obj, 'onAfterEvent', payload, r === NO_HOOK ? undefined : r).catch(() => {});
  } catch (e) {
    await tell(obj, at, e);
    throw e;
  }
};

// Delivers the events of `list` ([kind, payload, json, ...]) in order with `deliverEvent`;
// rejects with the first failure. `at` (an empty array) holds the event being delivered and
// whether the delivery failed or timed out (`hookTimedOut`): then the rest is not delivered.
export async function deliverEvents(obj, id, list, at) {
  for (let i = 0; i < list.length && !at[1]; ) await deliverEvent(obj, id, list[i++], list[i++], list[i++], at);
}

// The delivery of `at` (see `deliverEvents`) did not end within loading.timeoutMs: calls
// `onError(error, event)` as for a thrown error, with an Error of kind 'timeout' and `message`.
export function hookTimedOut(obj, at, message) {
  const e = new Error(message);
  e.kind = 'timeout';
  tell(obj, at, e);
}

// Calls `obj.destroy()` in a microtask, ignoring what it throws or returns.
export function destroyHook(obj) {
  Promise.resolve()
    .then(() => hook(obj, 'destroy'))
    .catch(() => {});
}

// What `obj.testConnection()` says: resolves (yes) without the method, or when its answer is
// true, or not a boolean and neither null nor undefined; rejects (no) otherwise and when it
// throws or rejects. Called in a microtask.
export function testHook(obj) {
  return Promise.resolve()
    .then(() => hook(obj, 'testConnection'))
    .then((v) => {
      if (!(v === NO_HOOK || (typeof v == 'boolean' ? v : v != null))) throw 0;
    });
}

// Whether `v` is a promise-like object (not when reading `then` throws).
const thenable = (v) => {
  try {
    return v !== null && typeof v == 'object' && typeof v.then == 'function';
  } catch (_) {
    return false;
  }
};
// Runs the source middleware `fns` (as they are now) on event `e`, in order: each gets the
// event and returns it, a changed event, undefined (unchanged) or null (drop it); a returned
// promise is awaited. Returns [event] ([null] when dropped), or [event, error] when one threw or
// rejected; when a middleware returned a promise, a promise of that array (never rejected).
export function runMiddleware(fns, e) {
  fns = fns.slice();
  let i = 0;
  const step = (v) => {
    for (;;) {
      if (v === null) return [v];
      if (v !== undefined) e = v;
      if (i == fns.length) return [e];
      try {
        v = fns[i++].call(null, e);
        if (thenable(v)) return Promise.resolve(v).then(step, (x) => [e, x]);
      } catch (x) {
        return [e, x];
      }
    }
  };
  return step();
}

// `context.page`: the document's path, referrer, search, title and URL (without fragment).
export function pageContext() {
  const l = location;
  const d = document;
  return { path: l.pathname, referrer: d.referrer, search: l.search, title: d.title, url: l.href.split('#')[0] };
}

// Completes event `e` with the fields every event has and returns its JSON, or [message] when
// it cannot be serialised. `o`: the validated options (or undefined); a new messageId, the time
// now, `anonymousId`, `userId` (or null): the defaults the options may override; `base`: the
// context shared by every event, under options.context; `prefs`: the consent in force (copied:
// stamped, whatever options.context says). `context.page` is merged key by key: the document's,
// then (page events) the page fields of the properties, then options.context.page.
export function completeEvent(e, type, o, anonymousId, userId, base, prefs) {
  try {
    o = o || {};
    const str = (v, d) => (typeof v == 'string' ? v : d);
    const obj = (v) => v !== null && typeof v == 'object';
    e.type = type;
    e.messageId = typeof o.messageId == 'string' ? o.messageId : uuid();
    e.timestamp = o.timestamp == null ? isoNow() : isoDate(o.timestamp);
    e.anonymousId = str(o.anonymousId, anonymousId);
    e.userId = str(o.userId, str(e.userId, userId ?? null));
    const consent = { categoryPreferences: { ...prefs } };
    const c = obj(o.context) ? o.context : {};
    // As Segment's: the document's page fields, a page event's own (its properties hold all five,
    // merged over the document's), then options.context.page; a page's name is a property too.
    const page = pageContext();
    if (type == 'page') {
      for (const k in page) page[k] = e.properties[k];
      if (e.name) e.properties.name = e.name;
    }
    e.context = Object.assign({}, base, c, { page: Object.assign(page, obj(c.page) && c.page), consent });
    e.integrations = obj(o.integrations) ? o.integrations : {};
    return JSON.stringify(e);
  } catch (err) {
    return [text(err)];
  }
}

// --- event listeners: a Map from event name to an array of callbacks ---

// Adds `cb` for `name` (a new array: an `emitEvent` under way keeps the one it started with).
export function addListener(ls, name, cb) {
  ls.set(name, (ls.get(name) || []).concat([cb]));
}

// Removes every `cb` added for `name`.
export function removeListener(ls, name, cb) {
  ls.set(name, (ls.get(name) || []).filter((f) => f !== cb));
}

// Whether `name` has a listener.
export function hasListener(ls, name) {
  return (ls.get(name) || []).length > 0;
}

// Calls the listeners of `name` with `payload`, in the order added; returns what those that
// threw threw.
export function emitEvent(ls, name, payload) {
  const thrown = [];
  for (const f of ls.get(name) || []) {
    try {
      f.call(null, payload);
    } catch (e) {
      thrown.push(e);
    }
  }
  return thrown;
}

// --- API results ---

// A new pending promise with its resolve and reject functions: [promise, resolve, reject].
export function deferred() {
  let a;
  const p = new Promise((res, rej) => (a = [res, rej]));
  return [p, ...a];
}

// Resolves a `retryDeadLetters` promise with its counts.
export function retryResult(resolve, retried, succeeded, failed) {
  resolve({ retried, succeeded, failed });
}

// The reflective, error and console operations of the wasm (`js::op`) behind one function, by
// number: a throw (a proxy trap, a throwing getter) reaches the wasm as an `Err`.
export function jsOp(op, a, b, c) {
  switch (op) {
    case 0:
      return Reflect.get(a, b);
    case 1:
      return Reflect.set(a, b, c);
    case 2:
      return Object.getPrototypeOf(a);
    case 3:
      return Object.keys(a);
    case 4:
      return Object.entries(a);
    case 5:
      return Object.assign(a, b);
    case 6:
      return Array.from(a);
    case 7:
      return String(a);
    case 8:
      return new Error(a);
    case 9:
      return new TypeError(a);
    case 13:
      return JSON.stringify(a);
    case 14:
      return Reflect.get(globalThis, a);
    case 15:
      if (typeof a == 'string') return a;
      try {
        if (typeof a.message == 'string') return a.message;
      } catch (_) {}
      return String(a);
    default:
      console[['log', 'warn', 'error'][op - 10]](a);
  }
}

// Random words from `crypto.getRandomValues`, 64 at a time (`Math.random` where `crypto` is
// missing or throws).
let words = [];
export function random32() {
  if (!words.length) {
    const a = new Uint32Array(64);
    try {
      crypto.getRandomValues(a);
    } catch (_) {
      for (let i = 0; i < 64; i++) a[i] = Math.random() * 4294967296;
    }
    words = Array.from(a);
  }
  return words.pop();
}

// A random (version 4) UUID, lowercase and hyphenated: `crypto.randomUUID` where the page has it
// (secure contexts), else `uuidFromWords`.
export function uuid() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) {
    try {
      return c.randomUUID();
    } catch (_) {}
  }
  return uuidFromWords();
}

// A version-4 UUID with its random hex digits from `random32` words.
export function uuidFromWords() {
  return '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) => (c ^ (random32() & (15 >> (c / 4)))).toString(16));
}
