// Tests of the dev server itself: relay sink, failure modes, request log, remote scripts,
// static files, and a browser smoke test.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../www/server.mjs';
import {
  launchBrowser,
  withServer,
  openPage,
  sinkEvents,
  setSinkMode,
  resetSink,
  requestLog,
  clearLog,
} from './harness.mjs';

function batchBody(ids, extra = {}) {
  return JSON.stringify({
    batch: ids.map((id) => ({ type: 'track', event: 'Test', messageId: id, properties: { n: 1 } })),
    sentAt: new Date().toISOString(),
    ...extra,
  });
}

function postBatch(url, ids, { path: route = '/v1/batch', contentType = 'application/json', headers = {} } = {}) {
  return fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...headers },
    body: batchBody(ids),
  });
}

describe('dev server over HTTP', () => {
  let server;
  let dataDir;

  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-server-test-'));
    server = await startServer({ port: 0, dataDir, quiet: true });
  });
  after(async () => {
    await server.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await resetSink(server.url);
    await clearLog(server.url);
  });

  test('records each batch event in memory and as a JSON line', async () => {
    const res = await postBatch(server.url, ['m1', 'm2'], {
      headers: { authorization: 'Basic ' + Buffer.from('wk:').toString('base64') },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });

    const sink = await sinkEvents(server.url);
    assert.equal(sink.count, 2);
    assert.deepEqual(sink.events.map((e) => e.messageId), ['m1', 'm2']);
    assert.equal(sink.events[0].event.event, 'Test');
    assert.ok(!Number.isNaN(Date.parse(sink.events[0].receivedAt)));
    assert.equal(sink.requests, 1);
    assert.ok(sink.bytes > 0);
    assert.equal(sink.lastAuthorization, 'Basic ' + Buffer.from('wk:').toString('base64'));
    assert.deepEqual(sink.duplicates, []);

    const lines = (await fs.readFile(path.join(dataDir, 'sink-events.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(JSON.parse(lines[0])), ['receivedAt', 'messageId', 'event']);
  });

  test('accepts text/plain bodies (sendBeacon) on /v1/b and reports duplicates', async () => {
    assert.equal((await postBatch(server.url, ['a', 'b'], { path: '/v1/b', contentType: 'text/plain;charset=UTF-8' })).status, 200);
    assert.equal((await postBatch(server.url, ['b', 'c'])).status, 200);
    const sink = await sinkEvents(server.url);
    assert.equal(sink.count, 4);
    assert.deepEqual(sink.duplicates, ['b']);
    assert.equal(sink.requests, 2);
  });

  test('rejects a body that is not a batch', async () => {
    const res = await fetch(`${server.url}/v1/batch`, { method: 'POST', body: 'nope' });
    assert.equal(res.status, 400);
    const res2 = await fetch(`${server.url}/v1/batch`, { method: 'POST', body: '{"events":[]}' });
    assert.equal(res2.status, 400);
    assert.equal((await sinkEvents(server.url)).count, 0);
  });

  test('fail mode answers the status with Retry-After and records nothing', async () => {
    await setSinkMode(server.url, { mode: 'fail', status: 429, retryAfter: 2 });
    const res = await postBatch(server.url, ['x']);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '2');
    await setSinkMode(server.url, { mode: 'fail', status: 503 });
    const res2 = await postBatch(server.url, ['x']);
    assert.equal(res2.status, 503);
    assert.equal(res2.headers.get('retry-after'), null);
    let sink = await sinkEvents(server.url);
    assert.equal(sink.count, 0);
    assert.equal(sink.requests, 2);

    await setSinkMode(server.url, { mode: 'ok' });
    assert.equal((await postBatch(server.url, ['x'])).status, 200);
    sink = await sinkEvents(server.url);
    assert.equal(sink.count, 1);
    assert.deepEqual(sink.duplicates, []);
  });

  test('sequence mode answers the statuses in turn, then ok', async () => {
    await setSinkMode(server.url, { mode: 'sequence', statuses: [503, 429, 200] });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await postBatch(server.url, [`s${i}`])).status);
    assert.deepEqual(statuses, [503, 429, 200, 200]);
    const sink = await sinkEvents(server.url);
    assert.deepEqual(sink.events.map((e) => e.messageId), ['s2', 's3']);
    assert.deepEqual(sink.mode, { mode: 'ok' });
  });

  test('sequence mode entries may carry a Retry-After', async () => {
    await setSinkMode(server.url, { mode: 'sequence', statuses: [{ status: 429, retryAfter: 1 }, 200] });
    const res = await postBatch(server.url, ['r1']);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal((await postBatch(server.url, ['r1'])).status, 200);
  });

  test('an invalid mode is refused', async () => {
    await assert.rejects(setSinkMode(server.url, { mode: 'explode' }), /400/);
  });

  test('reset clears memory and the file', async () => {
    await postBatch(server.url, ['z', 'z']);
    await resetSink(server.url);
    const sink = await sinkEvents(server.url);
    assert.equal(sink.count, 0);
    assert.equal(sink.requests, 0);
    assert.deepEqual(sink.duplicates, []);
    assert.equal(await fs.readFile(path.join(dataDir, 'sink-events.jsonl'), 'utf8'), '');
  });

  test('CORS: preflight answers 204 and responses allow the origin', async () => {
    const pre = await fetch(`${server.url}/v1/batch`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://example.test',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://example.test');
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
    assert.match(pre.headers.get('access-control-allow-headers'), /authorization/);
    const res = await postBatch(server.url, ['c1']);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
  });

  test('request log records method, path and query; clear empties it', async () => {
    await fetch(`${server.url}/fake/remote.js?v=1`);
    await postBatch(server.url, ['l1']);
    const log = await requestLog(server.url);
    const urls = log.map((e) => `${e.method} ${e.url}`);
    assert.ok(urls.includes('GET /fake/remote.js?v=1'), urls.join('\n'));
    assert.ok(urls.includes('POST /v1/batch'));
    const entry = log.find((e) => e.path === '/fake/remote.js');
    assert.equal(entry.query, '?v=1');
    await clearLog(server.url);
    assert.deepEqual((await requestLog(server.url)).filter((e) => e.path !== '/__log'), []);
  });

  test('/scripts: normal, bad body, down', async () => {
    const ok = await fetch(`${server.url}/scripts?consent=${encodeURIComponent('{"measurement":true}')}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), {
      scripts: [{ id: 'remote-analytics', src: '/fake/remote.js', requiredConsent: ['measurement'] }],
      metadata: { source: 'local' },
    });
    const bad = await fetch(`${server.url}/scripts?mode=bad`);
    assert.equal(bad.status, 200);
    assert.equal(await bad.text(), 'not json');
    assert.equal((await fetch(`${server.url}/scripts?mode=down`)).status, 500);
  });

  test('static files, fake scripts and content types', async () => {
    const html = await fetch(`${server.url}/blank.html`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type'), /^text\/html/);
    assert.equal(html.headers.get('cache-control'), 'no-store');

    const remote = await fetch(`${server.url}/fake/remote.js`);
    assert.equal(remote.status, 200);
    assert.match(remote.headers.get('content-type'), /^text\/javascript/);
    assert.match(await remote.text(), /__remoteLoaded/);

    assert.equal((await fetch(`${server.url}/fake/broken.js`)).status, 404);
    assert.equal((await fetch(`${server.url}/fake/missing.js`)).status, 404);
    assert.equal((await fetch(`${server.url}/../package.json`)).status, 404);
    assert.equal((await fetch(`${server.url}/fake/..%2f..%2fpackage.json`)).status, 404);

    const started = Date.now();
    const slow = await fetch(`${server.url}/fake/slow.js?ms=300`);
    assert.ok(Date.now() - started >= 280, 'slow.js answered too early');
    assert.match(await slow.text(), /__slowLoaded/);
  });

  test('serves pkg/ with application/wasm when a build exists', async (t) => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const wasm = path.join(root, 'pkg', 'consent_analytics_bg.wasm');
    try {
      await fs.access(wasm);
    } catch {
      t.skip('no pkg/ build (npm run build)');
      return;
    }
    const res = await fetch(`${server.url}/pkg/consent_analytics_bg.wasm`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/wasm');
    const js = await fetch(`${server.url}/pkg/consent_analytics.js`);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
  });
});

describe('browser smoke test', () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('opens www/blank.html and the request log sees it', async () => {
    await withServer(async (server) => {
      const p = await openPage(browser, `${server.url}/blank.html`);
      try {
        assert.equal(await p.page.title(), 'blank');
        const log = await requestLog(server.url);
        assert.ok(log.some((e) => e.method === 'GET' && e.path === '/blank.html'));
        assert.ok(!log.some((e) => e.path.startsWith('/fake/')), 'no vendor script was fetched');
        assert.deepEqual(p.errors, []);
        assert.deepEqual(p.runtimeErrors(), []);
      } finally {
        await p.close();
      }
    });
  });

  test('a fake vendor script injected by the page runs and is logged', async () => {
    await withServer(async (server) => {
      const p = await openPage(browser, `${server.url}/blank.html`);
      try {
        await p.page.evaluate(
          () =>
            new Promise((resolve, reject) => {
              const s = document.createElement('script');
              s.src = '/fake/remote.js';
              s.onload = resolve;
              s.onerror = reject;
              document.head.append(s);
            }),
        );
        assert.equal(await p.page.evaluate(() => window.__remoteLoaded), 1);
        const log = await requestLog(server.url);
        assert.ok(log.some((e) => e.path === '/fake/remote.js'));
      } finally {
        await p.close();
      }
    });
  });
});
