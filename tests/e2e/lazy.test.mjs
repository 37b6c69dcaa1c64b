// Lazy loading, script injection and remote scripts in real Chromium against the local server.
// The server's request log shows every path the browser fetched: the core promise is that no
// vendor script is fetched before the visitor consents to its purpose.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../www/server.mjs';
import { launchBrowser, openPage, requestLog, clearLog, waitFor } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REMOTE_JS = '/fake/remote.js';

let browser;
let server;
let dataDir;
let sri;

before(async () => {
  const body = await fs.readFile(path.join(ROOT, 'www/fake/remote.js'));
  sri = 'sha384-' + crypto.createHash('sha384').update(body).digest('base64');
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-lazy-'));
  server = await startServer({ port: 0, dataDir, quiet: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await clearLog(server.url);
});

/** Imports the package and registers the `vendor` JS destination type, recording per name. */
async function init(page) {
  await page.evaluate(async () => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.A = m.Analytics;
    window.rec = {};
    A.registerDestination('vendor', (settings) => {
      const r = (rec[settings.name] = { scripts: 0, init: 0, destroy: 0, tracks: [] });
      return {
        scripts(s) {
          r.scripts++;
          const d = { id: s.scriptId ?? `${s.name}-js`, src: s.src };
          if (s.integrity) Object.assign(d, { integrity: s.integrity, crossOrigin: 'anonymous' });
          return [d];
        },
        initialize() {
          r.init++;
        },
        track(e) {
          r.tracks.push(e.event);
        },
        destroy() {
          r.destroy++;
        },
      };
    });
  });
}

async function open() {
  const p = await openPage(browser, `${server.url}/blank.html`);
  await init(p.page);
  return p;
}

/** `Analytics.load(config)` as `window.a`; resolves null, or the rejection's message. */
function load(page, config) {
  return page.evaluate(async (c) => {
    try {
      window.a = await A.load(c);
      return null;
    } catch (e) {
      return String(e?.message ?? e);
    }
  }, config);
}

const vendor = (name, src, extra = {}) => ({
  type: 'vendor',
  id: name,
  requiredConsent: ['marketing'],
  settings: { name, src, ...extra },
});

/** How many times the server served `pathname` since the last clearLog. */
async function fetched(pathname) {
  return (await requestLog(server.url)).filter((r) => r.path === pathname).length;
}

const ev = (page, fn, arg) => page.evaluate(fn, arg);
const status = (page, id) => ev(page, (i) => a.status().find((s) => s.id === i), id);
const elements = (page, sel) => ev(page, (s) => document.querySelectorAll(s).length, sel);
const rec = (page, name) => ev(page, (n) => window.rec[n], name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('no script before consent', () => {
  test('50 events without marketing consent fetch nothing; after the grant one event loads each script once with nonce and SRI', async () => {
    const p = await open();
    const { page } = p;
    assert.equal(
      await load(page, {
        nonce: 'cfg-nonce',
        destinations: [
          vendor('v', REMOTE_JS, { integrity: sri }),
          {
            type: 'script',
            id: 's',
            requiredConsent: ['marketing'],
            settings: { scripts: [{ id: 'tag-js', src: '/fake/slow.js?ms=0', nonce: 'tag-nonce' }] },
          },
        ],
      }),
      null,
    );
    await ev(page, () => {
      for (let i = 0; i < 50; i++) a.track('Before Consent', { i });
    });
    await ev(page, () => a.flush());
    await sleep(300);
    assert.equal(await fetched(REMOTE_JS), 0);
    assert.equal(await fetched('/fake/slow.js'), 0);
    assert.equal(await elements(page, 'script[src]'), 0, 'no script element at all');
    assert.equal((await rec(page, 'v')).scripts, 0, 'scripts() is not even asked');
    assert.equal((await status(page, 'v')).state, 'blocked');
    assert.equal((await status(page, 's')).state, 'blocked');

    await ev(page, () => a.setConsent({ marketing: true }));
    await sleep(200);
    assert.equal(await fetched(REMOTE_JS), 0, 'the grant alone loads nothing (lazy)');

    await ev(page, () => a.track('After Consent'));
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 1, { message: 'delivery' });
    await waitFor(async () => (await status(page, 's')).state === 'loaded', { message: 's loaded' });
    assert.equal(await fetched(REMOTE_JS), 1);
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await elements(page, '#v-js'), 1);
    assert.equal(await elements(page, '#tag-js'), 1);
    const attrs = await ev(page, () => {
      const v = document.getElementById('v-js');
      const t = document.getElementById('tag-js');
      return {
        vNonce: v.nonce,
        vIntegrity: v.getAttribute('integrity'),
        vCors: v.getAttribute('crossorigin'),
        tNonce: t.nonce,
        remoteLoaded: window.__remoteLoaded,
      };
    });
    assert.deepEqual(attrs, {
      vNonce: 'cfg-nonce',
      vIntegrity: sri,
      vCors: 'anonymous',
      tNonce: 'tag-nonce',
      remoteLoaded: 1,
    });
    const v = await rec(page, 'v');
    assert.equal(v.init, 1);
    assert.deepEqual(v.tracks, ['After Consent'], 'events captured without consent are never sent');
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });

  test('a wrong SRI hash makes the load fail as script_load after the retries', async () => {
    const p = await open();
    const { page } = p;
    const wrong = 'sha384-' + crypto.createHash('sha384').update('not the file').digest('base64');
    await load(page, {
      consent: { marketing: true },
      loading: { maxRetries: 1 },
      retry: { baseDelayMs: 20 },
      destinations: [vendor('v', REMOTE_JS, { integrity: wrong })],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 'v')).state === 'failed', { message: 'failed' });
    const s = await status(page, 'v');
    assert.equal(s.lastError.kind, 'script_load');
    assert.match(s.lastError.message, /v-js failed to load/);
    assert.equal(await fetched(REMOTE_JS), 2, 'first attempt and one retry');
    assert.equal(await elements(page, '#v-js'), 0);
    assert.equal((await rec(page, 'v')).init, 0, 'never initialised');
    assert.equal(await ev(page, () => window.__remoteLoaded ?? 0), 0, 'the script never ran');
    assert.equal(await ev(page, () => a.deadLetters('v').length), 1, 'the buffered event');
    await p.close();
  });
});

describe('lazy loading', () => {
  test('a 404 script retries with backoff up to loading.maxRetries, then failed; retryDestination tries again', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      loading: { maxRetries: 2 },
      retry: { baseDelayMs: 20 },
      destinations: [{ type: 'script', id: 'b', settings: { scripts: [{ id: 'broken', src: '/fake/broken.js' }] } }],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 'b')).state === 'failed', { message: 'failed' });
    assert.equal(await fetched('/fake/broken.js'), 3);
    const s = await status(page, 'b');
    assert.equal(s.lastError.kind, 'script_load');
    assert.equal(s.failed, 3);
    await ev(page, () => a.retryDestination('b'));
    await waitFor(async () => (await fetched('/fake/broken.js')) === 6, { message: 'three more attempts' });
    await waitFor(async () => (await status(page, 'b')).state === 'failed', { message: 'failed again' });
    assert.equal(await elements(page, '#broken'), 0);
    await p.close();
  });

  test('a script slower than loading.timeoutMs fails as script_load (timed out)', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      loading: { maxRetries: 0, timeoutMs: 200 },
      destinations: [{ type: 'script', id: 't', settings: { scripts: [{ id: 'slow', src: '/fake/slow.js?ms=3000' }] } }],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 't')).state === 'failed', { message: 'failed' });
    const s = await status(page, 't');
    assert.equal(s.lastError.kind, 'script_load');
    assert.match(s.lastError.message, /slow timed out/);
    await p.close();
  });

  test('events tracked during a slow load are delivered in order after it', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      destinations: [vendor('v', '/fake/slow.js?ms=500')],
    });
    await ev(page, () => {
      for (let i = 1; i <= 5; i++) a.track(`e${i}`);
    });
    await sleep(100);
    assert.equal((await status(page, 'v')).state, 'loading');
    assert.deepEqual((await rec(page, 'v')).tracks, [], 'buffered while loading');
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 5, { message: 'delivery' });
    assert.deepEqual((await rec(page, 'v')).tracks, ['e1', 'e2', 'e3', 'e4', 'e5']);
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await ev(page, () => window.__slowLoaded), 1);
    await p.close();
  });

  test('loading.bufferLimit overflow during a load is dead-lettered with one warning', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      loading: { bufferLimit: 3 },
      destinations: [vendor('v', '/fake/slow.js?ms=400')],
    });
    await ev(page, () => {
      for (let i = 1; i <= 5; i++) a.track(`e${i}`);
    });
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 3, { message: 'delivery' });
    await sleep(100);
    assert.deepEqual((await rec(page, 'v')).tracks, ['e1', 'e2', 'e3']);
    const dead = await ev(page, () => a.deadLetters('v').map((d) => d.event.event));
    assert.deepEqual(dead, ['e4', 'e5']);
    const warnings = p.messages.filter((m) => m.type === 'warning' && /bufferLimit/.test(m.text));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].text, /^\[consent-analytics\]/);
    await p.close();
  });

  test('concurrent triggers share one load, and two destinations sharing a script share one fetch', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      destinations: [
        vendor('v1', '/fake/slow.js?ms=300', { scriptId: 'shared-js' }),
        vendor('v2', '/fake/slow.js?ms=300', { scriptId: 'shared-js' }),
      ],
    });
    await ev(page, () => {
      a.preload();
      a.track('A');
      a.preload();
      a.track('B');
    });
    await waitFor(async () => (await rec(page, 'v2')).tracks.length === 2, { message: 'delivery' });
    await waitFor(async () => (await rec(page, 'v1')).tracks.length === 2, { message: 'delivery' });
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await elements(page, '#shared-js'), 1);
    assert.equal(await ev(page, () => window.__slowLoaded), 1);
    for (const n of ['v1', 'v2']) {
      const r = await rec(page, n);
      assert.equal(r.scripts, 1, `${n} loaded once`);
      assert.equal(r.init, 1, `${n} initialised once`);
      assert.deepEqual(r.tracks, ['A', 'B']);
    }
    await p.close();
  });

  test('a refused script URL injects nothing and rejects Analytics.load naming the URL', async () => {
    const p = await open();
    const { page } = p;
    for (const url of ['javascript:alert(1)', 'data:text/javascript,window.x=1', 'http://example.com/x.js']) {
      const msg = await load(page, {
        destinations: [{ type: 'script', settings: { scripts: [{ id: 'bad', src: url }] } }],
      });
      assert.ok(msg, `load rejects for ${url}`);
      assert.ok(msg.includes(url), msg);
      assert.ok(msg.startsWith('config.destinations[0].settings.scripts[0].src: script URL refused'), msg);
    }
    const msg = await load(page, {
      destinations: [{ type: 'script', settings: { scripts: [{ id: 'x', src: '/a.js', sirc: 1 }] } }],
    });
    assert.equal(msg, 'unknown option config.destinations[0].settings.scripts[0].sirc');
    assert.match(
      await load(page, { destinations: [{ type: 'script', settings: {} }] }),
      /config\.destinations\[0\]\.settings\.scripts is required/,
    );
    // A JavaScript destination whose scripts() names a refused URL fails to load, injecting nothing.
    assert.equal(
      await load(page, {
        consent: { marketing: true },
        loading: { maxRetries: 0 },
        destinations: [vendor('v', 'javascript:alert(1)')],
      }),
      null,
    );
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 'v')).state === 'failed', { message: 'failed' });
    const s = await status(page, 'v');
    assert.equal(s.lastError.kind, 'script_load');
    assert.ok(s.lastError.message.includes('javascript:alert(1)'), s.lastError.message);
    assert.equal(await elements(page, 'script'), 0);
    assert.equal((await rec(page, 'v')).init, 0);
    await p.close();
  });

  test("a requiredConsent on a JavaScript destination's script is refused, never ignored", async () => {
    const p = await open();
    const { page } = p;
    await ev(page, async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      m.Analytics.registerDestination('site-tags', () => ({
        scripts: () => [{ id: 'ads-js', src: '/fake/slow.js?ms=0', requiredConsent: ['marketing'] }],
      }));
      window.a = await m.Analytics.load({
        loading: { maxRetries: 0 },
        destinations: [{ type: 'site-tags', id: 't', requiredConsent: [] }],
      });
      a.track('X');
    });
    await waitFor(async () => (await status(page, 't')).state === 'failed', { message: 'failed' });
    const s = await status(page, 't');
    assert.match(s.lastError.message, /scripts\(\)\[0\]\.requiredConsent/);
    assert.equal(await elements(page, '#ads-js'), 0, 'nothing injected');
    await p.close();
  });

  test('a destination whose load failed after injecting a script loses it on revocation', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      loading: { maxRetries: 0 },
      destinations: [
        {
          type: 'script',
          id: 's',
          requiredConsent: ['marketing'],
          settings: { scripts: [{ id: 'ok-js', src: '/fake/slow.js?ms=0' }, { id: 'bad-js', src: '/fake/broken.js' }] },
        },
      ],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 's')).state === 'failed', { message: 'failed' });
    assert.equal(await elements(page, '#ok-js'), 1);
    await ev(page, () => a.setConsent({ marketing: false }));
    await waitFor(async () => (await elements(page, '#ok-js')) === 0, { message: 'removed on revocation' });
    await p.close();
  });

  test('revocation removes the elements; re-grants never inject or initialise again', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      destinations: [
        vendor('v', REMOTE_JS),
        {
          type: 'script',
          id: 's',
          requiredConsent: ['marketing'],
          settings: {
            scripts: [
              { id: 'tag-a', src: '/fake/slow.js?ms=0' },
              { id: 'tag-keep', textContent: 'window.__keep=(window.__keep||0)+1', persistAfterConsentRevoked: true },
            ],
          },
        },
      ],
    });
    await ev(page, () => a.track('first'));
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 1, { message: 'delivery' });
    await waitFor(async () => (await status(page, 's')).state === 'loaded', { message: 's loaded' });
    assert.equal(await elements(page, '#v-js, #tag-a, #tag-keep'), 3);
    for (let i = 0; i < 3; i++) {
      await ev(page, () => a.setConsent({ marketing: false }));
      await waitFor(async () => (await elements(page, '#v-js, #tag-a')) === 0, { message: 'removed' });
      assert.equal(await elements(page, '#tag-keep'), 1, 'persistAfterConsentRevoked stays');
      assert.equal((await status(page, 'v')).state, 'blocked');
      await ev(page, () => a.track('while revoked'));
      await ev(page, () => a.setConsent({ marketing: true }));
      await ev(page, (n) => a.track(`round${n}`), i);
      await waitFor(async () => (await rec(page, 'v')).tracks.length === i + 2, { message: 'delivery' });
    }
    await sleep(200);
    const v = await rec(page, 'v');
    assert.deepEqual(v.tracks, ['first', 'round0', 'round1', 'round2']);
    assert.equal(v.scripts, 1);
    assert.equal(v.init, 1);
    assert.equal(await fetched(REMOTE_JS), 1);
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await elements(page, '#v-js, #tag-a'), 0, 're-grant does not inject again');
    assert.equal(await ev(page, () => [window.__remoteLoaded, window.__slowLoaded, window.__keep]).then(String), '1,1,1');
    await p.close();
  });

  test("two clients of one page: one's revocation leaves a script the other's destination of the same id uses", async () => {
    const p = await open();
    const { page } = p;
    const config = {
      consent: { measurement: true },
      destinations: [
        {
          type: 'script',
          id: 'tag',
          requiredConsent: ['measurement'],
          settings: { scripts: [{ id: 'tag-two', textContent: 'window.__two=(window.__two||0)+1' }] },
        },
      ],
    };
    await load(page, config);
    await ev(page, async (c) => {
      window.b = await A.load(c);
    }, config);
    await ev(page, () => (a.track('x'), b.track('x')));
    await waitFor(async () => (await ev(page, () => [a, b].every((c) => c.status()[0].state === 'loaded'))), {
      message: 'both loaded',
    });
    await ev(page, () => a.setConsent({ measurement: false }));
    assert.equal(await elements(page, '#tag-two'), 1, "still used by the other client's destination");
    await ev(page, () => b.setConsent({ measurement: false }));
    assert.equal(await elements(page, '#tag-two'), 0);
    assert.equal(await ev(page, () => window.__two), 1);
    await p.close();
  });

  test('consent flipping during loads: the last grant loads once and delivers; nothing fails', async () => {
    const p = await open();
    const { page } = p;
    await load(page, { loading: { maxRetries: 1 }, destinations: [vendor('v', '/fake/slow.js?ms=300')] });
    // Each grant starts a load that the revocation after it abandons; their late ends must not
    // count against the load of the last grant.
    await ev(page, () => {
      for (let i = 0; i < 4; i++) {
        a.setConsent({ marketing: true });
        a.track(`t${i}`);
        a.setConsent({ marketing: false });
      }
      a.setConsent({ marketing: true });
      a.track('final');
    });
    await waitFor(async () => (await rec(page, 'v'))?.tracks.includes('final'), { message: 'final delivered' });
    await sleep(700);
    const st = await status(page, 'v');
    assert.deepEqual([st.state, st.failed, st.deadLettered], ['loaded', 0, 0]);
    const v = await rec(page, 'v');
    assert.deepEqual(v.tracks, ['final'], 'events captured before a revocation are never sent');
    assert.equal(v.init, 1);
    assert.deepEqual(await ev(page, () => a.deadLetters()), []);
    await p.close();
  });

  test("revoking one destination leaves a script another allowed destination shares", async () => {
    const p = await open();
    const { page } = p;
    const shared = { id: 'tag-shared', textContent: 'window.__shared=(window.__shared||0)+1' };
    await load(page, {
      consent: { marketing: true },
      destinations: [
        { type: 'script', id: 'ads', requiredConsent: ['marketing'], settings: { scripts: [shared] } },
        { type: 'script', id: 'site', requiredConsent: [], settings: { scripts: [shared] } },
      ],
    });
    await ev(page, () => a.track('first'));
    await waitFor(async () => (await status(page, 'site')).state === 'loaded', { message: 'site loaded' });
    await waitFor(async () => (await status(page, 'ads')).state === 'loaded', { message: 'ads loaded' });
    await ev(page, () => a.setConsent({ marketing: false }));
    assert.equal((await status(page, 'ads')).state, 'blocked');
    assert.equal(await elements(page, '#tag-shared'), 1, "still used by 'site'");
    await ev(page, () => a.unloadDestination('site'));
    assert.equal(await elements(page, '#tag-shared'), 0, 'gone once no destination uses it');
    assert.equal(await ev(page, () => window.__shared), 1, 'injected once');
    await p.close();
  });

  test('revocation during a slow load removes the element and never initialises; a re-grant loads once', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { marketing: true },
      destinations: [vendor('v', '/fake/slow.js?ms=500')],
    });
    await ev(page, () => a.track('before'));
    await waitFor(async () => (await elements(page, '#v-js')) === 1, { message: 'injecting' });
    await ev(page, () => a.setConsent({ marketing: false }));
    assert.equal(await elements(page, '#v-js'), 0, 'removed at once');
    assert.equal((await status(page, 'v')).state, 'blocked');
    await sleep(800);
    let v = await rec(page, 'v');
    assert.equal(v.init, 0, 'not initialised after the revocation');
    assert.deepEqual(v.tracks, []);
    assert.equal(await elements(page, '#v-js'), 0);
    await ev(page, () => a.setConsent({ marketing: true }));
    await ev(page, () => a.track('after'));
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 1, { message: 'delivery' });
    v = await rec(page, 'v');
    assert.deepEqual(v.tracks, ['after']);
    assert.equal(v.init, 1);
    assert.equal(await fetched('/fake/slow.js'), 1, 'the script is not fetched twice');
    await p.close();
  });

  test('unloadDestination destroys the instance and removes its script; the next event loads a new instance', async () => {
    const p = await open();
    const { page } = p;
    await load(page, { consent: { marketing: true }, destinations: [vendor('v', REMOTE_JS)] });
    await ev(page, () => a.track('one'));
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 1, { message: 'delivery' });
    await ev(page, () => {
      window.first = rec.v;
      return a.unloadDestination('v');
    });
    await waitFor(async () => (await rec(page, 'v')).destroy === 1, { message: 'destroy()' });
    assert.equal(await elements(page, '#v-js'), 0);
    assert.equal((await status(page, 'v')).state, 'unloaded');
    await ev(page, () => a.track('two'));
    // The factory made a new instance (with a record of its own): it loads and gets the event.
    await waitFor(async () => (await rec(page, 'v')).tracks.length === 1 && (await ev(page, () => rec.v !== first)), {
      message: 'delivery to a new instance',
    });
    assert.deepEqual((await rec(page, 'v')).tracks, ['two']);
    assert.equal((await rec(page, 'v')).init, 1);
    assert.deepEqual(await ev(page, () => ({ tracks: first.tracks, init: first.init, destroy: first.destroy })), {
      tracks: ['one'],
      init: 1,
      destroy: 1,
    });
    assert.equal(await elements(page, '#v-js'), 1);
    assert.equal(await fetched(REMOTE_JS), 2);
    await p.close();
  });

  test("loading.strategy 'eager' loads allowed destinations at load; preload() loads only allowed ones", async () => {
    let p = await open();
    await load(p.page, {
      consent: { marketing: true },
      loading: { strategy: 'eager' },
      destinations: [vendor('v', REMOTE_JS), { ...vendor('w', '/fake/slow.js?ms=0'), requiredConsent: ['measurement'] }],
    });
    await waitFor(async () => (await rec(p.page, 'v')).init === 1, { message: 'eager load' });
    assert.equal(await fetched(REMOTE_JS), 1);
    assert.equal(await fetched('/fake/slow.js'), 0, 'measurement not granted');
    await p.close();

    await clearLog(server.url);
    p = await open();
    await load(p.page, {
      consent: { measurement: true },
      destinations: [vendor('v', REMOTE_JS), { ...vendor('w', '/fake/slow.js?ms=0'), requiredConsent: ['measurement'] }],
    });
    await sleep(200);
    assert.equal(await fetched('/fake/slow.js'), 0, 'lazy: nothing before preload');
    await ev(p.page, () => a.preload());
    await waitFor(async () => (await status(p.page, 'w')).state === 'loaded', { message: 'preload' });
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await fetched(REMOTE_JS), 0);
    assert.equal((await rec(p.page, 'v')).scripts, 0);
    await p.close();
  });

  test('an initialize() that never settles fails the load as timeout after loading.timeoutMs; its event is dead-lettered, preload() resolves, others are not delayed', async () => {
    const p = await open();
    const { page } = p;
    const r = await ev(page, async () => {
      const got = [];
      A.registerDestination('hang', () => ({ initialize: () => new Promise(() => {}), track() {} }));
      A.registerDestination('ok', () => ({ track: (e) => void got.push(e.event) }));
      window.a = await A.load({
        loading: { timeoutMs: 300, maxRetries: 0 },
        retry: { maxRetries: 0 },
        destinations: [{ type: 'hang', requiredConsent: [] }, { type: 'ok', requiredConsent: [] }],
      });
      a.track('e1');
      const t0 = performance.now();
      const pre = await Promise.race([
        a.preload().then(() => 'resolved'),
        new Promise((res) => setTimeout(() => res('pending after 3 s'), 3000)),
      ]);
      return { pre, ms: performance.now() - t0, got, status: a.status(), dead: a.deadLetters() };
    });
    assert.equal(r.pre, 'resolved');
    assert.ok(r.ms >= 250 && r.ms < 2000, `preload took ${r.ms} ms`);
    assert.deepEqual(r.got, ['e1'], 'the other destination was not delayed');
    const s = r.status.find((x) => x.id === 'hang');
    assert.equal(s.state, 'failed');
    assert.equal(s.lastError.kind, 'timeout');
    assert.match(s.lastError.message, /initialize timed out after 300 ms/);
    assert.equal(s.deadLettered, 1);
    assert.equal(s.pending, 0);
    assert.equal(r.dead.length, 1);
    assert.equal(r.dead[0].destination, 'hang');
    assert.equal(r.dead[0].event.event, 'e1');
    assert.equal(r.dead[0].error.kind, 'timeout');
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });

  test('a scripts() that settles after loading.timeoutMs is retried; the late answer is ignored (one initialisation)', async () => {
    const p = await open();
    const { page } = p;
    await ev(page, async () => {
      window.late = { scripts: 0, init: 0, tracks: [] };
      A.registerDestination('late', () => ({
        scripts() {
          // The first answer comes after the timeout, the second at once.
          return late.scripts++ ? [] : new Promise((res) => setTimeout(() => res([]), 700));
        },
        initialize() {
          late.init++;
        },
        track(e) {
          late.tracks.push(e.event);
        },
      }));
      window.a = await A.load({
        loading: { timeoutMs: 300, maxRetries: 1 },
        retry: { baseDelayMs: 20 },
        destinations: [{ type: 'late', requiredConsent: [] }],
      });
      window.errors = [];
      a.on('error', (e) => errors.push(e.error));
      a.track('e1');
    });
    await waitFor(async () => (await status(page, 'late')).state === 'loaded', { message: 'loaded on the retry' });
    await sleep(900);
    const r = await ev(page, () => ({ late, errors, status: a.status()[0] }));
    assert.equal(r.late.scripts, 2);
    assert.equal(r.late.init, 1, 'the late answer did not initialise it again');
    assert.deepEqual(r.late.tracks, ['e1']);
    assert.equal(r.status.state, 'loaded');
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0].kind, 'timeout');
    assert.match(r.errors[0].message, /scripts timed out after 300 ms/);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

describe('remote scripts', () => {
  const scriptsRequests = async () =>
    (await requestLog(server.url))
      .filter((r) => r.path === '/scripts')
      .map((r) => new URLSearchParams(r.query));

  test('the list is asked with the consent and only allowed scripts are injected; revocation removes them', async () => {
    const p = await open();
    const { page } = p;
    assert.equal(await load(page, { scriptsUrl: '/scripts', nonce: 'cfg-nonce' }), null);
    await waitFor(async () => (await scriptsRequests()).length === 1, { message: '/scripts' });
    const consent = JSON.parse((await scriptsRequests())[0].get('consent'));
    assert.deepEqual(consent, {
      necessary: true,
      functionality: false,
      experience: false,
      measurement: false,
      marketing: false,
    });
    await sleep(300);
    assert.equal(await fetched(REMOTE_JS), 0, 'measurement missing: not fetched');
    assert.equal(await elements(page, '#remote-analytics'), 0);

    await ev(page, () => a.setConsent({ measurement: true }));
    await waitFor(async () => (await elements(page, '#remote-analytics')) === 1, { message: 'injected' });
    await waitFor(async () => ev(page, () => window.__remoteLoaded === 1), { message: 'ran' });
    const reqs = await scriptsRequests();
    assert.equal(reqs.length, 2);
    assert.equal(JSON.parse(reqs[1].get('consent')).measurement, true);
    assert.equal(await ev(page, () => document.getElementById('remote-analytics').nonce), 'cfg-nonce');

    await ev(page, () => a.setConsent({ measurement: false }));
    await waitFor(async () => (await elements(page, '#remote-analytics')) === 0, { message: 'removed' });
    assert.equal(await fetched(REMOTE_JS), 1);
    await p.close();
  });

  test('a script the list stops returning after a consent change is removed from the page', async () => {
    const p = await open();
    const { page } = p;
    await load(page, { consent: { marketing: true }, scriptsUrl: '/scripts?mode=filtered' });
    await waitFor(async () => (await elements(page, '#remote-filtered')) === 1, { message: 'injected' });

    await ev(page, () => a.setConsent({ marketing: false }));
    await waitFor(async () => (await scriptsRequests()).length === 2, { message: 'list asked again' });
    await waitFor(async () => (await elements(page, '#remote-filtered')) === 0, { message: 'removed' });
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });

  test('a second load within the TTL uses the session cache; an expired entry is fetched again', async () => {
    const p = await open();
    const { page } = p;
    const config = { consent: { measurement: true }, scriptsUrl: '/scripts' };
    await load(page, config);
    await waitFor(async () => (await elements(page, '#remote-analytics')) === 1, { message: 'injected' });
    assert.equal((await scriptsRequests()).length, 1);

    await clearLog(server.url);
    await page.reload();
    await init(page);
    await load(page, config);
    await waitFor(async () => (await elements(page, '#remote-analytics')) === 1, { message: 'from cache' });
    assert.equal((await scriptsRequests()).length, 0, 'not fetched again within the TTL');

    await page.reload();
    await init(page);
    await load(page, { ...config, scriptsCacheTtlMs: 0 });
    await waitFor(async () => (await scriptsRequests()).length === 1, { message: 'refetch when expired' });
    await p.close();
  });

  for (const mode of ['down', 'bad']) {
    test(`?mode=${mode} keeps the last good (expired) copy across a reload and tracking keeps working`, async () => {
      const p = await open();
      const { page } = p;
      await load(page, { consent: { measurement: true }, scriptsUrl: '/scripts' });
      await waitFor(async () => (await elements(page, '#remote-analytics')) === 1, { message: 'injected' });

      await page.reload();
      await init(page);
      await clearLog(server.url);
      const err = await load(page, {
        consent: { measurement: true },
        scriptsUrl: `/scripts?mode=${mode}`,
        scriptsCacheTtlMs: 0,
        destinations: [{ ...vendor('v', '/fake/slow.js?ms=0'), requiredConsent: [] }],
      });
      assert.equal(err, null);
      await ev(page, () => a.track('still works'));
      await waitFor(async () => (await elements(page, '#remote-analytics')) === 1, { message: 'last good copy' });
      await waitFor(async () => (await rec(page, 'v'))?.tracks.length === 1, { message: 'tracking' });
      const reqs = await scriptsRequests();
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0].get('mode'), mode);
      const logged = p.messages.filter((m) => m.type === 'error' && m.text.includes('remote scripts:'));
      assert.equal(logged.length, 1, JSON.stringify(p.messages));
      assert.match(logged[0].text, /^\[consent-analytics\] remote scripts: GET \/scripts\?mode=/);
      assert.match(logged[0].text, mode === 'down' ? /HTTP 500/ : /not JSON/);
      assert.match(logged[0].text, /last good copy/);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  }

  test('with no good copy ever, a failing service injects nothing and tracking is unaffected', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      consent: { measurement: true },
      scriptsUrl: '/scripts?mode=down',
      destinations: [{ ...vendor('v', '/fake/slow.js?ms=0'), requiredConsent: [] }],
    });
    await ev(page, () => a.track('ok'));
    await waitFor(async () => (await rec(page, 'v'))?.tracks.length === 1, { message: 'tracking' });
    await waitFor(async () => p.messages.some((m) => m.type === 'error' && /remote scripts:/.test(m.text)), {
      message: 'error logged',
    });
    assert.equal(await elements(page, '#remote-analytics'), 0);
    assert.equal(await fetched(REMOTE_JS), 0);
    await p.close();
  });
});

describe('scripts report what really happened', () => {
  const scriptDest = (id, scripts, extra = {}) => ({ type: 'script', id, settings: { scripts }, ...extra });

  test('a script whose id another element of the page holds is not reported loaded: the load fails naming the clash', async () => {
    const p = await open();
    const { page } = p;
    await ev(page, () => {
      const d = document.createElement('div');
      d.id = 'app';
      document.body.append(d);
    });
    await load(page, {
      loading: { maxRetries: 0 },
      destinations: [scriptDest('s', [{ id: 'app', src: '/fake/slow.js?ms=0' }])],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 's')).state === 'failed', { message: 'failed' });
    const s = await status(page, 's');
    assert.equal(s.lastError.kind, 'script_load');
    assert.match(s.lastError.message, /script app not injected: <div> already in the page has this id/);
    assert.equal(await ev(page, () => a.testDestination('s')), false);
    assert.equal(await fetched('/fake/slow.js'), 0, 'nothing injected');
    assert.equal(await elements(page, 'script#app'), 0);
    assert.equal(await elements(page, 'div#app'), 1, 'the page element stays');
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });

  test('a script that timed out and is retried is fetched and run once: the retry waits on the element in flight', async () => {
    const p = await open();
    const { page } = p;
    await load(page, {
      loading: { maxRetries: 2, timeoutMs: 400 },
      retry: { baseDelayMs: 20, jitter: false },
      destinations: [scriptDest('t', [{ id: 'slow', src: '/fake/slow.js?ms=700' }])],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 't')).state !== 'loading', { message: 'settled' });
    const s = await status(page, 't');
    assert.equal(s.state, 'loaded', JSON.stringify(s));
    assert.equal(s.failed, 1, 'the first attempt timed out');
    await sleep(300);
    assert.equal(await fetched('/fake/slow.js'), 1);
    assert.equal(await ev(page, () => window.__slowLoaded), 1, 'ran once');
    assert.equal(await elements(page, 'script#slow'), 1);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });

  test('an inline script the page Content Security Policy blocks fails as script_load; with the nonce it runs', async () => {
    const p = await open();
    const { page } = p;
    await ev(page, () => {
      const m = document.createElement('meta');
      m.httpEquiv = 'Content-Security-Policy';
      m.content = "script-src 'self' 'wasm-unsafe-eval' 'nonce-page-nonce'";
      document.head.append(m);
    });
    await load(page, {
      loading: { maxRetries: 0 },
      destinations: [
        scriptDest('blocked', [{ id: 'inline-blocked', textContent: 'window.__blocked = 1' }]),
        scriptDest('allowed', [{ id: 'inline-allowed', textContent: 'window.__allowed = 1', nonce: 'page-nonce' }]),
      ],
    });
    await ev(page, () => a.track('X'));
    await waitFor(async () => (await status(page, 'blocked')).state === 'failed', { message: 'failed' });
    await waitFor(async () => (await status(page, 'allowed')).state === 'loaded', { message: 'loaded' });
    const s = await status(page, 'blocked');
    assert.equal(s.lastError.kind, 'script_load');
    assert.equal(s.lastError.message, 'script inline-blocked was blocked by the Content Security Policy: inline');
    assert.equal(await ev(page, () => window.__blocked), undefined);
    assert.equal(await ev(page, () => window.__allowed), 1);
    assert.equal(await elements(page, 'script#inline-blocked'), 0);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});
