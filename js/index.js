// The package entry (`import { Analytics } from 'consent-analytics'`).
//
// `Analytics.load(config)` returns at once an instance in waiting: it has every method of the
// loaded client and is awaitable to it. Meanwhile the WebAssembly module is fetched and
// compiled (once per page, on the first `load` in a browser) and the calls made before it is
// ready are kept and applied in call order once the client has loaded; their arguments are
// checked then, by the client itself.
//
// Where the wasm comes from: `new URL('./consent_analytics_bg.wasm', import.meta.url)`, the form
// Vite and webpack 5 turn into an asset of the build, and which a plain `<script
// type="module">` resolves beside this file. esbuild and Rollup (without an asset plugin) leave
// it as it is, pointing beside the bundle where no wasm was copied: there the module's bytes
// come from `consent_analytics_bg.wasm.js` instead (a dynamic import, so a separate chunk that
// other builds never load). Nothing is fetched or compiled at import and there is no top-level
// await, so importing never waits and never throws, in Node and server-side rendering too.

import init, { Analytics as Client } from './consent_analytics.js';
import { moduleUrl } from './locate.js';

const PREFIX = '[consent-analytics]';

/** Whether this is a page: outside one (Node, server-side rendering) the client is inert. */
const inBrowser = () => typeof window === 'object' && window !== null && typeof document === 'object';

/** The event calls: they return a messageId, which a call made before the load gets now. */
const EVENT_CALLS = ['track', 'page', 'identify', 'group', 'alias'];

/** The calls that return a Promise: before the load, one settled once the call is applied. */
const ASYNC_CALLS = [
  'setConsent',
  'flush',
  'preload',
  'testDestination',
  'retryDeadLetters',
  'retryDestination',
  'unloadDestination',
];

/**
 * The remaining calls and what each returns before the load (it is applied once loaded):
 * nothing is granted, sent or stored before the client runs, so `consent()` is `necessary`
 * only, `status()` and `deadLetters()` are empty and `clearDeadLetters()` has cleared nothing.
 */
const OTHER_CALLS = {
  consent: () => ({ necessary: true, functionality: false, experience: false, measurement: false, marketing: false }),
  status: () => [],
  deadLetters: () => [],
  clearDeadLetters: () => 0,
  reset: () => undefined,
  on: () => undefined,
  off: () => undefined,
  addSourceMiddleware: () => undefined,
  free: () => undefined,
};

/** Calls that only read: before the load there is nothing to apply them to. */
const READS = new Set(['consent', 'status', 'deadLetters']);

/** The WebAssembly module's initialisation, started by the first `load` in a browser. */
let wasmReady = null;

/** Whether the WebAssembly module is ready (the client's static calls work). */
let wasmLoaded = false;

/** `Analytics.registerDestination` calls made before the wasm module is ready. */
const registrations = [];

/**
 * The wasm for `init`: its URL, or its bytes where a bundler left that URL pointing beside its
 * bundle (see the top of this file).
 */
async function wasmSource() {
  const url = new URL('./consent_analytics_bg.wasm', import.meta.url);
  const besideThisFile = import.meta.url.replace(/[^/]*$/, 'consent_analytics_bg.wasm');
  const leftBesideBundle = moduleUrl === import.meta.url && url.href === besideThisFile;
  if (!leftBesideBundle) return url;
  const { default: base64 } = await import('./consent_analytics_bg.wasm.js');
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function loadWasm() {
  wasmReady ??= wasmSource().then((source) => init({ module_or_path: source })).then(() => {
    wasmLoaded = true;
    for (const [kind, factory] of registrations.splice(0)) {
      try {
        Client.registerDestination(kind, factory);
      } catch (e) {
        console.error(PREFIX, 'Analytics.registerDestination() dropped:', message(e));
      }
    }
  });
  // A module that could not be fetched or compiled (offline, say) is tried again by the next load.
  wasmReady.catch(() => {
    if (!wasmLoaded) wasmReady = null;
  });
  return wasmReady;
}

function message(e) {
  return e instanceof Error ? e.message : String(e);
}

/** A v4 UUID: `crypto.randomUUID` where the page is a secure context, else the same from random bytes. */
function uuid() {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The client's notion of a plain object (for the short call forms and merging options). */
function isPlain(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  try {
    const proto = Object.getPrototypeOf(v);
    return proto === null || Object.getPrototypeOf(proto) === null;
  } catch {
    return false;
  }
}

/** The page as the event's `context.page` describes it, at the time of the call. */
function pageNow() {
  return {
    path: location.pathname,
    referrer: document.referrer,
    search: location.search,
    title: document.title,
    url: location.href.split('#')[0],
  };
}

/**
 * The arguments of an event call made before the load, completed so that applying it later
 * records what the call would have: its messageId, time and page go in as `options`, under
 * the caller's own options. Arguments the client will refuse are passed on unchanged, for the
 * client to name them.
 */
function stamp(name, args) {
  const page = pageNow();
  // `page(properties, options)` and `identify(traits, options)`: the short forms.
  const short = (name === 'page' || name === 'identify') && isPlain(args[0]);
  const at = short ? 1 : 2;
  const given = args[at];
  if (args.length > at + 1 || (given != null && !isPlain(given))) return { args, messageId: uuid() };
  const out = args.slice();
  while (out.length < at) out.push(undefined);
  const own = given ?? {};
  const messageId = typeof own.messageId === 'string' ? own.messageId : uuid();
  // `context.page` is merged key by key, as the client merges it over the document's.
  let context = own.context ?? {};
  if (isPlain(context)) {
    const ownPage = context.page ?? {};
    context = { ...context, page: isPlain(ownPage) ? { ...page, ...ownPage } : ownPage };
  }
  out[at] = { ...own, messageId: own.messageId ?? messageId, timestamp: own.timestamp ?? new Date(), context };
  // A page event's properties carry the page fields too: the page of the call, not of the load.
  if (name === 'page') {
    const p = at - 1;
    const props = out[p];
    if (props == null) out[p] = { ...page };
    else if (isPlain(props)) out[p] = { ...page, ...props };
  }
  return { args: out, messageId };
}

/** What every method of an inert client (outside a browser, or after a failed load) returns. */
function inertClient() {
  const client = {};
  for (const name of EVENT_CALLS) client[name] = () => uuid();
  for (const name of ASYNC_CALLS) client[name] = () => Promise.resolve(name === 'testDestination' ? false : undefined);
  client.retryDeadLetters = () => Promise.resolve({ retried: 0, succeeded: 0, failed: 0 });
  for (const [name, value] of Object.entries(OTHER_CALLS)) client[name] = value;
  if (typeof Symbol.dispose === 'symbol') client[Symbol.dispose] = () => undefined;
  return client;
}

/**
 * The client while it loads (`Analytics.load`): every method of `Analytics`, and a thenable
 * resolving to the loaded client. Calls before the load are applied in order once it is done.
 */
class AnalyticsBrowser {
  /** The calls made before the load: [name, args, resolve?, reject?]. */
  #queue = [];
  /** The loaded client (or the inert one), once there is one. */
  #client = null;
  /** Resolves to the loaded client, rejects with the load's Error. */
  #loaded;

  constructor(config) {
    if (!inBrowser()) {
      this.#client = inertClient();
      this.#loaded = Promise.resolve(this.#client);
      return;
    }
    this.#loaded = loadWasm()
      .then(() => Client.load(config))
      .then(
        (client) => {
          this.#client = client;
          this.#replay(client);
          return client;
        },
        (e) => {
          this.#client = inertClient();
          const dropped = this.#queue.splice(0);
          if (dropped.length) {
            console.error(PREFIX, `the load failed (${message(e)}): ${dropped.length} call(s) made before it were dropped`);
          }
          for (const [, , , reject] of dropped) reject?.(e);
          throw e;
        },
      );
    // A page that never awaits the instance still sees a failed load (the console error above,
    // or the rejection when it awaits): not an unhandled rejection besides.
    this.#loaded.catch(() => {});
  }

  #replay(client) {
    for (const [name, args, resolve, reject] of this.#queue.splice(0)) {
      try {
        const result = client[name](...args);
        resolve?.(result);
      } catch (e) {
        if (reject) reject(e);
        else console.error(PREFIX, `${name}() made before the load was dropped:`, message(e));
      }
    }
  }

  #call(name, args) {
    if (this.#client) return this.#client[name](...args);
    if (EVENT_CALLS.includes(name)) {
      const stamped = stamp(name, args);
      this.#queue.push([name, stamped.args]);
      return stamped.messageId;
    }
    if (ASYNC_CALLS.includes(name)) {
      return new Promise((resolve, reject) => this.#queue.push([name, args, resolve, reject]));
    }
    if (!READS.has(name)) this.#queue.push([name, args]);
    return OTHER_CALLS[name]();
  }

  then(onLoaded, onFailed) {
    return this.#loaded.then(onLoaded, onFailed);
  }

  catch(onFailed) {
    return this.#loaded.catch(onFailed);
  }

  finally(onSettled) {
    return this.#loaded.finally(onSettled);
  }

  static {
    const names = [...EVENT_CALLS, ...ASYNC_CALLS, ...Object.keys(OTHER_CALLS)];
    for (const name of names) {
      Object.defineProperty(this.prototype, name, {
        value(...args) {
          return this.#call(name, args);
        },
        writable: true,
        configurable: true,
      });
    }
    if (typeof Symbol.dispose === 'symbol') {
      this.prototype[Symbol.dispose] = function dispose() {
        return this.#call('free', []);
      };
    }
  }
}

/**
 * The package's `Analytics`: `load` returns the client in waiting; `registerDestination` works
 * before the WebAssembly module is ready (kept and applied when it is). `x instanceof
 * Analytics` holds for a loaded client.
 */
export const Analytics = Object.freeze({
  load(config) {
    return new AnalyticsBrowser(config);
  },
  registerDestination(kind, factory) {
    if (!wasmLoaded) {
      registrations.push([kind, factory]);
      return;
    }
    Client.registerDestination(kind, factory);
  },
  [Symbol.hasInstance](value) {
    return value instanceof Client;
  },
});

