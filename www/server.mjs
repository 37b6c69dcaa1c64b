// Local development and test server for consent-analytics. No dependencies beyond Node.
//
//   node www/server.mjs            (PORT env, default 8080; HOST env, default 127.0.0.1)
//
// Serves:
//   /                      static files from www/
//   /pkg/*                 the wasm-pack output in pkg/
//   /fake/<name>.js        fake vendor scripts from www/fake/
//   /fake/slow.js?ms=N     a script answered after N ms (sets window.__slowLoaded)
//   /fake/broken.js        always 404
//   /scripts               remote scripts list (?mode=bad: invalid body, ?mode=down: 500,
//                          ?mode=filtered: a list filtered by the consent it is sent)
//   /v1/batch, /v1/b       relay sink (Segment batch format), see /sink/* to inspect it
//   /__log                 request log (GET), /__log/clear (POST)
//   /bundle/*              files from the `bundleDir` option (a page a bundler built; tests)
//
// Import it to embed it in tests: `startServer({ port: 0, dataDir, quiet: true })`.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const WWW_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(WWW_DIR);
const MAX_BODY_BYTES = 5 * 1024 * 1024;
const MAX_SLOW_MS = 120_000;

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.d.ts': 'application/typescript; charset=utf-8',
  '.ts': 'application/typescript; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

const REMOTE_SCRIPTS = {
  scripts: [
    { id: 'remote-analytics', src: '/fake/remote.js', requiredConsent: ['measurement'] },
  ],
  metadata: { source: 'local' },
};

function contentTypeFor(file) {
  if (file.endsWith('.d.ts')) return CONTENT_TYPES['.d.ts'];
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** In-memory + JSONL-file store of the events the relay sink accepted, with a failure switch. */
class Sink {
  constructor(dataDir) {
    this.dataDir = dataDir;
    this.file = path.join(dataDir, 'sink-events.jsonl');
    fs.mkdirSync(dataDir, { recursive: true });
    this.reset();
  }

  /** Clears events, counters and the JSONL file, and sets the mode back to ok. */
  reset() {
    this.events = [];
    this.seen = new Map(); // messageId -> times seen
    this.requests = 0;
    this.aborted = 0; // requests the client gave up on before a delayed answer
    this.inFlight = 0;
    this.maxInFlight = 0; // most batch requests open at once
    this.accepted = 0;
    this.rejected = 0;
    this.bytes = 0;
    this.lastAuthorization = null;
    this.lastContentType = null;
    this.mode = { mode: 'ok' };
    this.sequence = [];
    fs.writeFileSync(this.file, '');
  }

  /**
   * { mode: 'ok' } | { mode: 'fail', status = 503, retryAfter? } |
   * { mode: 'sequence', statuses: [503, 429, 200 | {status, retryAfter, location, delayMs}], retryAfter? }
   * retryAfter: seconds (a number) or an HTTP-date (a string), sent as the Retry-After header.
   * location: a URL sent as the Location header (with a 3xx status: a redirect).
   */
  setMode(spec) {
    if (!spec || typeof spec !== 'object') throw new Error('mode must be a JSON object');
    const { mode } = spec;
    if (mode === 'ok') {
      this.mode = { mode: 'ok' };
      this.sequence = [];
    } else if (mode === 'fail') {
      const status = spec.status ?? 503;
      checkStatus(status);
      checkRetryAfter(spec.retryAfter);
      this.mode = { mode: 'fail', status, retryAfter: spec.retryAfter };
      this.sequence = [];
    } else if (mode === 'sequence') {
      if (!Array.isArray(spec.statuses)) throw new Error('sequence mode needs "statuses": [..]');
      checkRetryAfter(spec.retryAfter);
      this.sequence = spec.statuses.map((entry) => {
        const item = typeof entry === 'number' ? { status: entry } : { ...entry };
        checkStatus(item.status);
        item.retryAfter ??= spec.retryAfter;
        checkRetryAfter(item.retryAfter);
        if (item.location !== undefined && typeof item.location !== 'string') {
          throw new Error(`invalid location ${JSON.stringify(item.location)} (a URL string)`);
        }
        const delay = item.delayMs ?? 0;
        if (typeof delay !== 'number' || !(delay >= 0 && delay <= MAX_SLOW_MS)) {
          throw new Error(`invalid delayMs ${JSON.stringify(item.delayMs)} (0..${MAX_SLOW_MS})`);
        }
        return item;
      });
      this.mode = { mode: 'sequence', statuses: this.sequence.map((s) => s.status) };
    } else {
      throw new Error(`unknown mode ${JSON.stringify(mode)} (ok | fail | sequence)`);
    }
    return this.describeMode();
  }

  describeMode() {
    if (this.mode.mode === 'sequence') {
      return { mode: 'sequence', remaining: this.sequence.map((s) => s.status) };
    }
    return { ...this.mode };
  }

  /** The status (and Retry-After) to answer the next batch with. */
  nextResponse() {
    if (this.mode.mode === 'fail') {
      return { status: this.mode.status, retryAfter: this.mode.retryAfter };
    }
    if (this.mode.mode === 'sequence') {
      const next = this.sequence.shift();
      if (this.sequence.length === 0) this.mode = { mode: 'ok' };
      if (next) return next;
    }
    return { status: 200 };
  }

  record(events) {
    const receivedAt = new Date().toISOString();
    const lines = [];
    for (const event of events) {
      const messageId =
        event && typeof event === 'object' && typeof event.messageId === 'string'
          ? event.messageId
          : null;
      if (messageId !== null) this.seen.set(messageId, (this.seen.get(messageId) ?? 0) + 1);
      const entry = { receivedAt, messageId, event };
      this.events.push(entry);
      lines.push(JSON.stringify(entry) + '\n');
    }
    if (lines.length) fs.appendFileSync(this.file, lines.join(''));
  }

  duplicates() {
    return [...this.seen].filter(([, n]) => n > 1).map(([id]) => id);
  }

  summary() {
    return {
      events: this.events,
      count: this.events.length,
      duplicates: this.duplicates(),
      requests: this.requests,
      aborted: this.aborted,
      maxInFlight: this.maxInFlight,
      accepted: this.accepted,
      rejected: this.rejected,
      bytes: this.bytes,
      lastAuthorization: this.lastAuthorization,
      lastContentType: this.lastContentType,
      mode: this.describeMode(),
    };
  }
}

function checkStatus(status) {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new Error(`invalid status ${JSON.stringify(status)}`);
  }
}

function checkRetryAfter(value) {
  const ok = value === undefined || (typeof value === 'number' ? value >= 0 : typeof value === 'string' && !Number.isNaN(Date.parse(value)));
  if (!ok) {
    throw new Error(`invalid retryAfter ${JSON.stringify(value)} (seconds, or an HTTP-date string)`);
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(buffer) {
  try {
    return JSON.parse(buffer.toString('utf8'));
  } catch {
    throw Object.assign(new Error('body is not valid JSON'), { status: 400 });
  }
}

/**
 * Starts the server.
 * @param {object} [options]
 * @param {number} [options.port=0]   0 picks a free port
 * @param {string} [options.host='127.0.0.1']
 * @param {string} [options.root]     repository root (www/ and pkg/ are served from it)
 * @param {string} [options.dataDir]  where sink-events.jsonl goes (default <root>/www/data)
 * @param {boolean} [options.quiet]   no per-request lines on stdout
 * @param {string} [options.bundleDir] served at /bundle/ (a page a bundler built, for tests)
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>,
 *   log: Array<{time: string, method: string, path: string, query: string, url: string}>,
 *   sink: Sink}>}
 */
export async function startServer({
  port = 0,
  host = '127.0.0.1',
  root = REPO_ROOT,
  dataDir,
  quiet = false,
  bundleDir,
} = {}) {
  const wwwDir = path.join(root, 'www');
  const pkgDir = path.join(root, 'pkg');
  const fakeDir = path.join(wwwDir, 'fake');
  const sink = new Sink(dataDir ?? path.join(wwwDir, 'data'));
  const log = [];
  const timers = new Set();

  function send(res, status, body, headers = {}) {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body ?? '');
    res.writeHead(status, {
      'Cache-Control': 'no-store',
      'Content-Length': buf.length,
      ...headers,
    });
    res.end(res.req.method === 'HEAD' ? undefined : buf);
  }

  function sendJson(res, status, value, headers = {}) {
    send(res, status, JSON.stringify(value), {
      'Content-Type': 'application/json; charset=utf-8',
      ...headers,
    });
  }

  async function sendFile(res, baseDir, relPath) {
    let rel;
    try {
      rel = decodeURIComponent(relPath);
    } catch {
      return send(res, 400, 'bad path');
    }
    let file = path.resolve(baseDir, '.' + path.posix.normalize('/' + rel));
    if (file !== baseDir && !file.startsWith(baseDir + path.sep)) return send(res, 403, 'forbidden');
    try {
      let stat = await fsp.stat(file);
      if (stat.isDirectory()) {
        file = path.join(file, 'index.html');
        stat = await fsp.stat(file);
      }
      const body = await fsp.readFile(file);
      return send(res, 200, body, { 'Content-Type': contentTypeFor(file) });
    } catch {
      return send(res, 404, `not found: ${relPath}`, { 'Content-Type': 'text/plain; charset=utf-8' });
    }
  }

  async function handleBatch(req, res) {
    sink.inFlight += 1;
    sink.maxInFlight = Math.max(sink.maxInFlight, sink.inFlight);
    try {
      return await answerBatch(req, res);
    } finally {
      sink.inFlight -= 1;
    }
  }

  /** Waits `ms`; resolves true when the client closed the request first. */
  function delay(res, ms) {
    return new Promise((resolve) => {
      const onClose = () => {
        clearTimeout(timer);
        timers.delete(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        timers.delete(timer);
        res.off('close', onClose);
        resolve(false);
      }, ms);
      timers.add(timer);
      res.once('close', onClose);
    });
  }

  async function answerBatch(req, res) {
    const body = await readBody(req);
    sink.requests += 1;
    sink.bytes += body.length;
    const { status, retryAfter, delayMs, location } = sink.nextResponse();
    // A slow backend: it takes the batch only when it answers, and not at all if the client
    // gave up on the request first.
    if (delayMs && (await delay(res, delayMs))) {
      sink.aborted += 1;
      return;
    }
    if (status < 200 || status > 299) {
      sink.rejected += 1;
      const headers = retryAfter !== undefined ? { 'Retry-After': String(retryAfter) } : {};
      if (location !== undefined) headers.Location = location;
      return sendJson(res, status, { ok: false, error: `sink answers ${status}` }, headers);
    }
    let payload;
    try {
      payload = parseJson(body);
    } catch (err) {
      sink.rejected += 1;
      throw err;
    }
    if (!payload || !Array.isArray(payload.batch)) {
      sink.rejected += 1;
      return sendJson(res, 400, {
        ok: false,
        error: 'body must be {"batch": [event, ...], "sentAt": "<ISO>"}',
      });
    }
    sink.accepted += 1;
    sink.lastAuthorization = req.headers.authorization ?? null;
    sink.lastContentType = req.headers['content-type'] ?? null;
    sink.record(payload.batch);
    return sendJson(res, status, { ok: true });
  }

  function handleSlow(res, query) {
    const ms = Math.min(Math.max(Number(query.get('ms')) || 0, 0), MAX_SLOW_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (res.destroyed) return;
      send(res, 200, 'window.__slowLoaded = (window.__slowLoaded || 0) + 1;\n', {
        'Content-Type': CONTENT_TYPES['.js'],
      });
    }, ms);
    timers.add(timer);
  }

  async function route(req, res) {
    const url = new URL(req.url, 'http://localhost');
    const { pathname, searchParams } = url;
    const method = req.method;
    log.push({
      time: new Date().toISOString(),
      method,
      path: pathname,
      query: url.search,
      url: pathname + url.search,
    });
    // The demo page polls the sink every second: those reads would bury everything else.
    if (!quiet && !(pathname === '/sink/events' && method === 'GET')) {
      console.log(`${method} ${pathname}${url.search}`);
    }

    const origin = req.headers.origin;
    res.setHeader('Access-Control-Allow-Origin', origin ?? '*');
    if (origin) {
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'content-type, authorization');
    res.setHeader('Access-Control-Expose-Headers', 'Retry-After');
    res.setHeader('Access-Control-Max-Age', '600');
    if (method === 'OPTIONS') return send(res, 204, '');

    const isGet = method === 'GET' || method === 'HEAD';

    if (pathname === '/v1/batch' || pathname === '/v1/b') {
      if (method !== 'POST') return sendJson(res, 405, { ok: false, error: 'POST only' });
      return handleBatch(req, res);
    }
    if (pathname === '/sink/events' && isGet) return sendJson(res, 200, sink.summary());
    if (pathname === '/sink/mode' && isGet) return sendJson(res, 200, sink.describeMode());
    if (pathname === '/sink/mode' && method === 'POST') {
      const spec = parseJson(await readBody(req));
      try {
        return sendJson(res, 200, { ok: true, mode: sink.setMode(spec) });
      } catch (err) {
        return sendJson(res, 400, { ok: false, error: err.message });
      }
    }
    if (pathname === '/sink/reset' && method === 'POST') {
      await readBody(req);
      sink.reset();
      return sendJson(res, 200, { ok: true });
    }
    if (pathname === '/__log' && isGet) return sendJson(res, 200, log);
    if (pathname === '/__log/clear' && method === 'POST') {
      await readBody(req);
      log.length = 0;
      return sendJson(res, 200, { ok: true });
    }
    if (pathname === '/scripts' && isGet) {
      const mode = searchParams.get('mode');
      if (mode === 'down') return sendJson(res, 500, { error: 'scripts service down' });
      if (mode === 'bad') {
        return send(res, 200, 'not json', { 'Content-Type': 'application/json; charset=utf-8' });
      }
      if (mode === 'filtered') {
        // A service that filters by consent itself: its scripts carry no requiredConsent, and
        // the marketing one is listed only while marketing is granted.
        let consent = {};
        try {
          consent = JSON.parse(searchParams.get('consent') ?? '{}') ?? {};
        } catch {}
        const scripts = consent.marketing ? [{ id: 'remote-filtered', src: '/fake/remote.js' }] : [];
        return sendJson(res, 200, { scripts, metadata: { source: 'filtered' } });
      }
      return sendJson(res, 200, REMOTE_SCRIPTS);
    }
    if (!isGet) return send(res, 405, 'method not allowed');
    if (pathname === '/fake/slow.js') return handleSlow(res, searchParams);
    if (pathname === '/fake/broken.js') return send(res, 404, 'not found: /fake/broken.js');
    if (pathname.startsWith('/fake/')) return sendFile(res, fakeDir, pathname.slice('/fake/'.length));
    if (pathname.startsWith('/pkg/')) return sendFile(res, pkgDir, pathname.slice('/pkg/'.length));
    if (bundleDir && pathname.startsWith('/bundle/')) {
      return sendFile(res, bundleDir, pathname.slice('/bundle/'.length));
    }
    return sendFile(res, wwwDir, pathname);
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err) => {
      if (res.headersSent) return res.destroy();
      sendJson(res, err.status ?? 500, { ok: false, error: err.message });
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;

  let closed;
  function close() {
    closed ??= new Promise((resolve) => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  }

  return { url: `http://${host}:${actualPort}`, port: actualPort, close, log, sink };
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? '127.0.0.1';
  const server = await startServer({ port, host, quiet: process.env.QUIET === '1' });
  console.log(`consent-analytics dev server: ${server.url}/`);
  console.log(`relay sink: ${server.url}/v1/batch (inspect: ${server.url}/sink/events)`);
  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
