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

// POSTs `body` to `url` with the `headers` object (as a keepalive request when `keepalive`),
// aborted after `ms` milliseconds unless 0 (where the browser has AbortSignal.timeout).
// Resolves [status, the delay in ms a 429 or 503 asked for with Retry-After, or null], [-1]
// when it timed out, or [0, message] when the request failed or fetch is missing; never rejects.
export function post(url, body, headers, keepalive, ms) {
  return new Promise((resolve) => {
    const signal = ms && self.AbortSignal && AbortSignal.timeout ? AbortSignal.timeout(ms) : undefined;
    resolve(fetch(url, { method: 'POST', body, headers, keepalive, signal }));
  })
    .then((r) => [r.status, r.status == 429 || r.status == 503 ? retryAfterMs(r.headers.get('Retry-After')) : null])
    .catch((e) => (e && e.name == 'TimeoutError' ? [-1] : [0, 'relay request failed: ' + text(e)]));
}

// A Retry-After value as a delay in ms: delay-seconds, or an HTTP-date (IMF-fixdate, RFC 850,
// asctime; asctime carries no zone and means GMT), a past date being 0; null when it is
// neither. The retry policy caps the delay at retry.maxDelayMs.
export function retryAfterMs(v) {
  v = v == null ? '' : v.trim();
  if (/^\d+$/.test(v)) return v * 1000;
  // An HTTP-date has a time of day (so '1.5' or '-1' is not taken for a date).
  const at = /\d\d:\d\d:\d\d/.test(v) ? Date.parse(/\d$/.test(v) ? v + ' GMT' : v) : NaN;
  return at == at ? Math.max(0, at - Date.now()) : null;
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

// --- network ---

// Remote scripts: GETs `url` (when given: nothing cached) giving up after `ms` milliseconds,
// calls `step` with [[body text]] for a 2xx answer or else [the failure message naming the
// URL], then, as long as `step` pushes a promise onto that array, awaits it and calls `step`
// with [what it resolved].
export async function remoteScripts(url, ms, step) {
  let r, timer;
  if (url != null) {
    r = await new Promise((resolve, reject) => {
      if (typeof fetch != 'function') throw 'fetch is not available';
      timer = setTimeout(() => resolve('timed out'), ms);
      fetch(url)
        .then((a) => (a.ok ? a.text().then((t) => [t], () => 'failed while reading the body') : `answered HTTP ${a.status}`))
        .then(resolve, reject);
    }).catch((e) => `failed: ${text(e)}`);
    clearTimeout(timer);
    if (typeof r == 'string') r = `GET ${url} ${r}`;
  } else await 0;
  for (let a; step((a = [r])), a[1]; ) r = await a[1];
}
