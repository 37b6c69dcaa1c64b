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

// POSTs `body` to `url` with the `headers` object. Resolves [status, Retry-After header or
// null]; rejects with a message when the request fails or fetch is missing.
export function post(url, body, headers, keepalive) {
  try {
    return fetch(url, { method: 'POST', body, headers, keepalive }).then(
      (r) => [r.status, r.status == 429 || r.status == 503 ? r.headers.get('Retry-After') : null],
      (e) => Promise.reject(text(e)),
    );
  } catch (e) {
    return Promise.reject(text(e));
  }
}
