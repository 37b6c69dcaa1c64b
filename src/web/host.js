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
