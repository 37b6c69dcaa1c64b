// End-to-end tests of the relay destination against the dev server's sink, in Chromium:
// settings validation, batching, an outage with retries (Retry-After as seconds or as a date),
// a reload during an outage, two tabs sharing one outbox, delivery at unload by beacon (trusted
// after a recent acknowledgement, else kept for the next page; nothing offline), flush() while
// events wait for a retry, and the writeKey header.
//
//   npm run build && node --test tests/e2e/relay.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser,
  withServer,
  openPage,
  sinkEvents,
  setSinkMode,
  requestLog,
  waitFor,
} from './harness.mjs';

/** A config with one relay to the local sink. */
function relayConfig(settings = {}, extra = {}) {
  return {
    destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch', ...settings } }],
    ...extra,
  };
}

/** Loads the package on /blank.html and `window.a = await Analytics.load(config)`. */
async function boot(page, url, config, { navigate = true } = {}) {
  if (navigate) await page.goto(`${url}/blank.html`);
  await page.evaluate(async (config) => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.A = m.Analytics;
    window.a = await m.Analytics.load(config);
  }, config);
}

/** Tracks `n` events named `prefix i`; returns their messageIds. */
function track(page, n, prefix = 'Event') {
  return page.evaluate(
    ([n, prefix]) => Array.from({ length: n }, (_, i) => window.a.track(`${prefix} ${i}`, { i })),
    [n, prefix],
  );
}

/** The relay outbox keys in the page's localStorage. */
function outboxKeys(page) {
  return page.evaluate(() => Object.keys(localStorage).filter((k) => k.includes(':outbox:')));
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Makes the page hidden or visible again, as a tab switch does. */
const setVisibility = (page, state) =>
  page.evaluate((state) => {
    Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);

/**
 * Waits until every one of `ids` reached the sink at least once, and checks that nothing else
 * did: a copy (at-least-once) carries the same messageId. Returns the sink summary.
 */
async function sinkHasAll(url, ids, { timeout = 8000 } = {}) {
  const s = await waitFor(
    async () => {
      const s = await sinkEvents(url);
      const got = new Set(s.events.map((e) => e.messageId));
      return ids.every((id) => got.has(id)) ? s : null;
    },
    { timeout, message: `${ids.length} events at the sink` },
  );
  assert.deepEqual([...new Set(s.events.map((e) => e.messageId))].sort(), [...ids].sort());
  return s;
}

async function sinkHasExactly(url, ids, { timeout = 8000 } = {}) {
  const s = await waitFor(
    async () => {
      const s = await sinkEvents(url);
      return s.count >= ids.length ? s : null;
    },
    { timeout, message: `${ids.length} events at the sink` },
  );
  assert.deepEqual(s.duplicates, [], 'no event arrives twice');
  assert.deepEqual(
    s.events.map((e) => e.messageId).sort(),
    [...ids].sort(),
    'exactly the tracked events arrive',
  );
  return s;
}

describe('relay destination', () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('settings are validated with errors naming the field', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, `${url}/blank.html`);
      const errors = await p.page.evaluate(async () => {
        const m = await import('/pkg/consent_analytics.js');
        await m.default();
        const out = [];
        for (const settings of [
          {},
          { endpoint: '/v1/batch', batchsize: 5 },
          { endpoint: 'ftp://example.com/batch' },
          { endpoint: 'javascript:alert(1)' },
          { endpoint: '/v1/batch', headers: { 'X-Site': 1 } },
          { endpoint: '/v1/batch', batchSize: 0 },
          { endpoint: '/v1/batch', beacon: 'yes' },
        ]) {
          try {
            await m.Analytics.load({ destinations: [{ type: 'relay', settings }] });
            out.push('loaded');
          } catch (e) {
            out.push(String(e.message));
          }
        }
        return out;
      });
      assert.match(errors[0], /config\.destinations\[0\]\.settings\.endpoint is required/);
      assert.match(errors[1], /unknown option config\.destinations\[0\]\.settings\.batchsize/);
      assert.match(errors[2], /config\.destinations\[0\]\.settings\.endpoint must be an http\(s\) URL/);
      assert.match(errors[3], /settings\.endpoint must be an http\(s\) URL/);
      assert.match(errors[4], /config\.destinations\[0\]\.settings\.headers\.X-Site must be a string/);
      assert.match(errors[5], /config\.destinations\[0\]\.settings\.batchSize must be at least 1/);
      assert.match(errors[6], /config\.destinations\[0\]\.settings\.beacon must be a boolean/);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('batchSize and flushIntervalMs decide the number of requests; flush() sends the rest', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ batchSize: 5, flushIntervalMs: 60000 }));
      const ids = await track(p.page, 12);
      let s = await waitFor(async () => ((s) => (s.count >= 10 ? s : null))(await sinkEvents(url)), {
        message: 'two full batches',
      });
      await pause(300);
      s = await sinkEvents(url);
      assert.equal(s.requests, 2, 'two full batches of 5, the last 2 wait');
      assert.equal(s.count, 10);
      assert.equal(s.lastContentType, 'application/json');
      await p.page.evaluate(() => window.a.flush());
      s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 3);
      // Order within and across batches is capture order.
      assert.deepEqual(
        s.events.map((e) => e.event.properties.i),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      );
      assert.deepEqual(await outboxKeys(p.page), [], 'acknowledged events leave the outbox');

      // flushIntervalMs: a partial batch goes on its own after the interval, in one request.
      await p.page.evaluate(async (config) => {
        window.b = await window.A.load(config);
      }, relayConfig({ batchSize: 100, flushIntervalMs: 400 }));
      const more = await p.page.evaluate(() => [1, 2, 3].map((i) => window.b.track('Late', { i })));
      await pause(150);
      assert.equal((await sinkEvents(url)).requests, 3, 'not before the interval');
      s = await sinkHasExactly(url, [...ids, ...more]);
      assert.equal(s.requests, 4);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('a flush in flight is not sent again by a second flush', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 60000 }));
      const ids = await track(p.page, 3);
      await p.page.evaluate(() => Promise.all([window.a.flush(), window.a.flush(), window.a.flush()]));
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 1);
      await p.close();
    });
  });

  test('an outage (503, then 429 with Retry-After) delivers every event exactly once', async () => {
    await withServer(async ({ url }) => {
      await setSinkMode(url, { mode: 'sequence', statuses: [503, { status: 429, retryAfter: 1 }] });
      const p = await openPage(browser, null);
      await boot(
        p.page,
        url,
        relayConfig(
          { flushIntervalMs: 50 },
          { retry: { baseDelayMs: 50, maxDelayMs: 5000, jitter: false } },
        ),
      );
      await p.page.evaluate(() => {
        window.errs = [];
        window.a.on('error', (e) => window.errs.push(e.error));
      });
      const started = Date.now();
      const ids = await track(p.page, 5);
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 3, 'one 503, one 429, one success');
      assert.equal(s.rejected, 2);
      assert.ok(Date.now() - started >= 1000, 'Retry-After: 1 was honoured');
      const errs = await p.page.evaluate(() => window.errs);
      assert.deepEqual(
        errs.map((e) => [e.kind, e.status]),
        [
          ['server', 503],
          ['rate_limit', 429],
        ],
      );
      const [st] = await p.page.evaluate(() => window.a.status());
      assert.equal(st.delivered, 5);
      assert.equal(st.deadLettered, 0);
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  // A 302 to a login page (which a followed redirect would GET and take for an acknowledgement)
  // and a 307 to another endpoint (which a followed redirect would POST the events to).
  for (const [status, location] of [
    [302, '/blank.html?login'],
    [307, '/v1/b?moved'],
  ]) {
    test(`a ${status} redirect is not followed with the events and is a validation failure`, async () => {
      await withServer(async ({ url }) => {
        await setSinkMode(url, { mode: 'sequence', statuses: [{ status, location }] });
        const p = await openPage(browser, null);
        await boot(p.page, url, relayConfig({ flushIntervalMs: 50 }, { retry: { baseDelayMs: 50, jitter: false } }));
        const ids = await track(p.page, 3);
        const dead = await waitFor(
          async () => {
            const d = await p.page.evaluate(() => window.a.deadLetters());
            return d.length === 3 ? d : null;
          },
          { message: 'three dead letters' },
        );
        assert.deepEqual(dead.map((d) => d.event.messageId).sort(), [...ids].sort());
        for (const d of dead) {
          assert.equal(d.error.kind, 'validation');
          assert.equal(d.error.status, 0, 'the browser hides which 3xx it was');
          assert.match(d.error.message, /redirect/);
          assert.equal(d.attempts, 1, 'not retried');
        }
        await pause(300);
        const s = await sinkEvents(url);
        assert.equal(s.requests, 1, 'one POST, not followed');
        assert.equal(s.count, 0, 'nothing delivered anywhere');
        const followed = (await requestLog(url)).filter((r) => r.url === location);
        assert.deepEqual(followed, [], 'the Location target was never asked');
        const [st] = await p.page.evaluate(() => window.a.status());
        assert.equal(st.delivered, 0);
        assert.equal(st.deadLettered, 3);
        await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
        assert.deepEqual(p.runtimeErrors(), []);
        await p.close();
      });
    });
  }

  test('a Retry-After HTTP-date is honoured as a delay until that time', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      await boot(
        p.page,
        url,
        relayConfig({ flushIntervalMs: 50 }, { retry: { baseDelayMs: 50, maxDelayMs: 10000, jitter: false } }),
      );
      // Three seconds ahead, at second resolution: at least two seconds after `started`, so
      // the success cannot come sooner however slow the machine is, if the date is honoured.
      const started = Date.now();
      const until = new Date(started + 3000).toUTCString();
      await setSinkMode(url, { mode: 'sequence', statuses: [{ status: 503, retryAfter: until }] });
      const ids = await track(p.page, 2);
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 2, 'one 503, one success');
      assert.ok(Date.now() - started >= 1500, `the retry waited for ${until} (base delay alone: 50 ms)`);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('a reload during an outage loses nothing: Analytics.load alone delivers the outbox', async () => {
    await withServer(async ({ url }) => {
      await setSinkMode(url, { mode: 'fail', status: 503 });
      // Retries far away: nothing is delivered before the reload.
      const config = relayConfig({ flushIntervalMs: 50 }, { retry: { baseDelayMs: 60000, jitter: false } });
      const p = await openPage(browser, null);
      await boot(p.page, url, config);
      const ids = await track(p.page, 5);
      await waitFor(async () => (await sinkEvents(url)).rejected >= 1, { message: 'a failed batch' });
      // The page itself saw the failure (the server may answer before the page reads it):
      // only then does a page hide hand nothing over.
      await waitFor(() => p.page.evaluate(() => window.a.status()[0].failed >= 1), { message: 'the page saw it' });
      assert.equal((await outboxKeys(p.page)).length, 5, 'persisted before being sent');
      await setSinkMode(url, { mode: 'ok' });
      await p.page.reload();
      assert.equal((await sinkEvents(url)).count, 0, 'no beacon while the backend fails');
      await boot(p.page, url, config, { navigate: false });
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 2);
      assert.deepEqual(s.events.map((e) => e.event.event), ids.map((_, i) => `Event ${i}`));
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('a restored backlog beyond loading.bufferLimit is delivered in full, in order, in batches', async () => {
    await withServer(async ({ url }) => {
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const config = (bufferLimit) =>
        relayConfig(
          { flushIntervalMs: 50, batchSize: 4 },
          { retry: { baseDelayMs: 60000, jitter: false }, loading: { bufferLimit } },
        );
      const p = await openPage(browser, null);
      await boot(p.page, url, config(10));
      const ids = await track(p.page, 10);
      await waitFor(async () => (await sinkEvents(url)).rejected >= 1, { message: 'a failed batch' });
      // The page itself saw the failure (the server may answer before the page reads it):
      // only then does a page hide hand nothing over.
      await waitFor(() => p.page.evaluate(() => window.a.status()[0].failed >= 1), { message: 'the page saw it' });
      await setSinkMode(url, { mode: 'ok' });
      await p.page.reload();
      // The outbox is bounded by the storage quota, not by what a destination holds in memory.
      await boot(p.page, url, config(3), { navigate: false });
      const s = await sinkHasExactly(url, ids);
      assert.deepEqual(s.events.map((e) => e.event.event), ids.map((_, i) => `Event ${i}`), 'in order');
      assert.ok(s.requests >= 3, `in batches of batchSize: ${s.requests} requests`);
      const st = await p.page.evaluate(() => window.a.status()[0]);
      assert.equal(st.deadLettered, 0);
      assert.deepEqual(await p.page.evaluate(() => window.a.deadLetters()), []);
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('an outage with the default settings loses nothing: 200 events reach the backend once', async () => {
    await withServer(async ({ url }) => {
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig());
      const ids = await track(p.page, 200);
      // Past retry.maxRetries (3) with the default backoff (1 s, doubling, full jitter).
      await waitFor(async () => (await sinkEvents(url)).rejected >= 5, { timeout: 40000, message: 'five failed attempts' });
      await setSinkMode(url, { mode: 'ok' });
      // The breaker (5 failures) opened: its recovery timeout (30 s) passes before the trial.
      const s = await sinkHasExactly(url, ids, { timeout: 60000 });
      assert.deepEqual(s.duplicates, []);
      const st = await p.page.evaluate(() => window.a.status()[0]);
      assert.equal(st.deadLettered, 0);
      assert.equal(st.lastError.kind, 'server');
      assert.deepEqual(await p.page.evaluate(() => window.a.deadLetters()), []);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('two tabs sharing an outbox never deliver the same entry twice', async () => {
    await withServer(async ({ url }) => {
      const config = relayConfig({ flushIntervalMs: 50 }, { retry: { baseDelayMs: 60000, jitter: false } });
      const context = await browser.newContext();
      // A page leaves 5 undelivered events behind during an outage.
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const p0 = await context.newPage();
      await boot(p0, url, config);
      const first = await track(p0, 5, 'First');
      await waitFor(async () => (await sinkEvents(url)).rejected >= 1, { message: 'a failed batch' });
      // The page itself saw the failure (the server may answer before the page reads it):
      // only then does a page hide hand nothing over.
      await waitFor(() => p0.evaluate(() => window.a.status()[0].failed >= 1), { message: 'the page saw it' });
      // Keys are `<prefix>:outbox:<destination>:<owner>:<seq>`; the owner's lock is
      // `<prefix>:outbox:<owner>`.
      const owner0 = (await outboxKeys(p0))[0].split(':')[3];
      await p0.close();
      await setSinkMode(url, { mode: 'ok' });

      // Two tabs load at the same moment: exactly one of them adopts the entries, and keeps
      // the gone owner's lock, so the other cannot take them even while its localStorage
      // still shows them under the old owner.
      const [p1, p2] = [await context.newPage(), await context.newPage()];
      await Promise.all([p1.goto(`${url}/blank.html`), p2.goto(`${url}/blank.html`)]);
      await Promise.all([boot(p1, url, config, { navigate: false }), boot(p2, url, config, { navigate: false })]);
      await sinkHasExactly(url, first);
      const held = await p1.evaluate(async () => (await navigator.locks.query()).held.map((l) => l.name));
      assert.ok(held.includes(`consent-analytics:outbox:${owner0}`), `the adopter holds the lock of ${owner0}`);
      await pause(1000);
      await sinkHasExactly(url, first);

      // A live tab's pending entries are not taken by a tab that loads meanwhile.
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const rejected = (await sinkEvents(url)).rejected;
      const second = await track(p1, 3, 'Second');
      await waitFor(async () => (await sinkEvents(url)).rejected > rejected, {
        message: 'a failed batch',
      });
      await setSinkMode(url, { mode: 'ok' });
      const p3 = await context.newPage();
      await boot(p3, url, config);
      await pause(1000);
      assert.equal((await sinkEvents(url)).count, 5, "p3 leaves p1's entries alone");
      assert.equal((await outboxKeys(p3)).length, 3);
      // Once p1 is gone, the next load takes them over.
      await p1.close();
      await boot(p3, url, config);
      await sinkHasExactly(url, [...first, ...second]);
      await waitFor(async () => (await outboxKeys(p3)).length === 0, { message: 'empty outbox' });
      await pause(500);
      await sinkHasExactly(url, [...first, ...second]);
      await context.close();
    });
  });

  test('without navigator.locks, a heartbeat per page decides which entries may be adopted', async () => {
    await withServer(async ({ url }) => {
      const config = relayConfig({ flushIntervalMs: 50 }, { retry: { baseDelayMs: 60000, jitter: false } });
      const context = await browser.newContext();
      await context.addInitScript(() => {
        Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined });
      });
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const p1 = await context.newPage();
      await boot(p1, url, config);
      assert.equal(await p1.evaluate(() => navigator.locks), undefined);
      const ids = await track(p1, 4);
      await waitFor(async () => (await sinkEvents(url)).rejected >= 1, { message: 'a failed batch' });
      // The page itself saw the failure (the server may answer before the page reads it):
      // only then does a page hide hand nothing over.
      await waitFor(() => p1.evaluate(() => window.a.status()[0].failed >= 1), { message: 'the page saw it' });
      await setSinkMode(url, { mode: 'ok' });
      // p1 is alive (fresh heartbeat): a new tab leaves its entries alone.
      const p2 = await context.newPage();
      await boot(p2, url, config);
      await pause(500);
      assert.equal((await sinkEvents(url)).count, 0);
      // p1 reloads: its page is discarded (pagehide, not persisted), so the new page adopts.
      await p1.reload();
      await boot(p1, url, config, { navigate: false });
      await sinkHasExactly(url, ids);
      await pause(500);
      await sinkHasExactly(url, ids);
      await context.close();
    });
  });

  test('events pending at unload go out by beacon, once', async () => {
    await withServer(async ({ url }) => {
      const config = relayConfig({ batchSize: 100, flushIntervalMs: 60000 });
      const p = await openPage(browser, null);
      await boot(p.page, url, config);
      // A beacon is trusted (its events forgotten at once) when this page's last delivery was
      // acknowledged recently: one delivery first.
      const warm = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      const ids = await track(p.page, 5);
      await waitFor(async () => (await outboxKeys(p.page)).length === 5, { message: 'persisted' });
      assert.equal((await sinkEvents(url)).requests, 1);
      await p.page.goto(`${url}/blank.html`);
      let s = await sinkHasExactly(url, [...warm, ...ids]);
      assert.equal(s.requests, 2);
      assert.match(s.lastContentType, /^text\/plain/, 'sent with navigator.sendBeacon');
      // The next page finds nothing left to send.
      assert.deepEqual(await outboxKeys(p.page), []);
      await boot(p.page, url, config, { navigate: false });
      const warm2 = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      const more = await track(p.page, 2, 'Closing');
      await pause(100);
      await p.page.close({ runBeforeUnload: true });
      s = await sinkHasExactly(url, [...warm, ...ids, ...warm2, ...more]);
      assert.equal(s.requests, 4);
      await p.close();
    });
  });

  for (const [what, settings] of [
    ['beacon: false', { beacon: false }],
    ['custom headers', { headers: { 'X-Site': 'shop' } }],
  ]) {
    test(`with ${what}, a page hide sends by keepalive fetch and keeps the events until it is answered`, async () => {
      await withServer(async ({ url }) => {
        const config = relayConfig({ batchSize: 100, flushIntervalMs: 60000, ...settings });
        const p = await openPage(browser, null);
        await boot(p.page, url, config);
        const warm = await track(p.page, 1, 'Warm');
        await p.page.evaluate(() => window.a.flush());
        const ids = await track(p.page, 2);
        await p.page.goto(`${url}/blank.html`);
        const s = await sinkHasAll(url, [...warm, ...ids]);
        assert.match(s.lastContentType, /^application\/json/, 'sent with fetch, not sendBeacon');
        // The browser may refuse a keepalive fetch after the page is gone, so its events stay
        // in the outbox unless the answer came while the page was still there: the next page
        // sends what is left, with the same messageId, and nothing stays behind.
        await boot(p.page, url, config, { navigate: false });
        await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'outbox emptied' });
        await sinkHasAll(url, [...warm, ...ids]);
        await p.close();
      });
    });
  }

  for (const [what, settings] of [
    ['sendBeacon', {}],
    ['keepalive fetch', { headers: { 'X-Site': 'shop' } }],
  ]) {
    test(`a trusted page hide with more than the 64 KB keepalive allowance pending (${what}) loses nothing`, async () => {
      await withServer(async ({ url }) => {
        const config = relayConfig({ batchSize: 1000, maxBatchBytes: 10_000_000, flushIntervalMs: 60000, ...settings });
        const p = await openPage(browser, null);
        await boot(p.page, url, config);
        const warm = await track(p.page, 1, 'Warm');
        await p.page.evaluate(() => window.a.flush());
        // About 200 KB: more than the browser lets beacons and keepalive fetches carry at once.
        const ids = await p.page.evaluate(() =>
          Array.from({ length: 200 }, (_, i) => window.a.track(`Big ${i}`, { i, pad: 'x'.repeat(1000) })),
        );
        await waitFor(async () => (await outboxKeys(p.page)).length === 200, { message: 'persisted' });
        await p.page.goto(`${url}/blank.html`);
        await pause(500);
        // What the browser refused stays in the outbox; the next page delivers it (a keepalive
        // fetch keeps its events until answered: the next page may send copies, same messageId).
        await boot(p.page, url, config, { navigate: false });
        if (what === 'sendBeacon') await sinkHasExactly(url, [...warm, ...ids], { timeout: 15000 });
        else await sinkHasAll(url, [...warm, ...ids], { timeout: 15000 });
        await p.close();
      });
    });
  }

  test('a request not answered within loading.timeoutMs is aborted before its retry: never two in flight', async () => {
    await withServer(async ({ url }) => {
      await setSinkMode(url, { mode: 'sequence', statuses: [{ status: 200, delayMs: 3000 }] });
      const p = await openPage(browser, null);
      await boot(
        p.page,
        url,
        relayConfig(
          { batchSize: 100, flushIntervalMs: 60000 },
          { loading: { timeoutMs: 500 }, retry: { baseDelayMs: 50, maxDelayMs: 50, jitter: false } },
        ),
      );
      await p.page.evaluate(() => {
        window.kinds = [];
        window.a.on('error', (e) => window.kinds.push(e.error.kind));
      });
      const ids = await track(p.page, 2);
      await p.page.evaluate(() => window.a.flush());
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.aborted, 1, 'the slow request was given up');
      assert.equal(s.maxInFlight, 1, 'the retry did not run beside it');
      assert.deepEqual(await p.page.evaluate(() => window.kinds), ['timeout']);
      await p.close();
    });
  });

  test('a relay that needs consent gets the consent event of the grant, then the events', async () => {
    await withServer(async ({ url }) => {
      const config = {
        destinations: [
          { type: 'relay', requiredConsent: ['measurement'], settings: { endpoint: '/v1/batch', flushIntervalMs: 50 } },
        ],
      };
      const p = await openPage(browser, null);
      await boot(p.page, url, config);
      await track(p.page, 1, 'Before');
      await p.page.evaluate(() => window.a.setConsent({ measurement: true }));
      const ids = await track(p.page, 1, 'After');
      await waitFor(async () => (await sinkEvents(url)).count >= 2, { message: 'two events' });
      await pause(300);
      const s = await sinkEvents(url);
      assert.deepEqual(
        s.events.map((e) => [e.event.type, e.event.event ?? null]),
        [['consent', null], ['track', 'After 0']],
      );
      assert.equal(s.events[1].messageId, ids[0]);
      assert.equal(s.events[0].event.context.consent.categoryPreferences.measurement, true);
      await p.close();
    });
  });

  test('an outage this page has not seen yet loses nothing at unload: the next page delivers every event', async () => {
    await withServer(async ({ url }) => {
      // No request before the unload: the page has had no answer from the backend.
      const config = relayConfig({ batchSize: 100, flushIntervalMs: 60000 });
      await setSinkMode(url, { mode: 'fail', status: 503 });
      const p = await openPage(browser, null);
      await boot(p.page, url, config);
      const ids = await track(p.page, 3);
      await waitFor(async () => (await outboxKeys(p.page)).length === 3, { message: 'persisted' });
      assert.equal((await sinkEvents(url)).requests, 0);
      await p.page.goto(`${url}/blank.html`);
      await waitFor(async () => (await sinkEvents(url)).rejected >= 1, { message: 'the beacon, rejected' });
      assert.equal((await sinkEvents(url)).count, 0);
      assert.equal((await outboxKeys(p.page)).length, 3, 'handed to the beacon and kept in the outbox');
      await setSinkMode(url, { mode: 'ok' });
      await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 50 }), { navigate: false });
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.requests, 2, 'the rejected beacon, then the next page');
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      const [st] = await p.page.evaluate(() => window.a.status());
      assert.equal(st.delivered, 3);
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('a beacon sent before any answer is delivered again by the next page with the same messageId', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 60000 }));
      const ids = await track(p.page, 2);
      await waitFor(async () => (await outboxKeys(p.page)).length === 2, { message: 'persisted' });
      await p.page.goto(`${url}/blank.html`);
      await sinkHasExactly(url, ids);
      assert.equal((await outboxKeys(p.page)).length, 2, 'not forgotten: no answer was seen');
      await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 50 }), { navigate: false });
      // At least once: the copy carries the same messageId, for the backend to drop.
      const s = await waitFor(async () => ((s) => (s.count >= 4 ? s : null))(await sinkEvents(url)), {
        message: 'the copies',
      });
      assert.deepEqual([...s.duplicates].sort(), [...ids].sort());
      assert.deepEqual([...new Set(s.events.map((e) => e.messageId))].sort(), [...ids].sort());
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      await p.close();
    });
  });

  test('offline, a page hide hands nothing over: the events stay in the outbox and go once online', async () => {
    await withServer(async ({ url }) => {
      const config = relayConfig({ batchSize: 100, flushIntervalMs: 60000 });
      const p = await openPage(browser, null);
      await p.context.addInitScript(() => {
        const send = navigator.sendBeacon.bind(navigator);
        window.__beacons = 0;
        navigator.sendBeacon = (u, b) => (window.__beacons++, send(u, b));
      });
      await boot(p.page, url, config);
      // A delivery first: without the network, even a trusted beacon is not attempted.
      const warm = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      await p.context.setOffline(true);
      assert.equal(await p.page.evaluate(() => navigator.onLine), false);
      const ids = await track(p.page, 3);
      await waitFor(async () => (await outboxKeys(p.page)).length === 3, { message: 'persisted' });
      await p.page.evaluate(() => window.dispatchEvent(new Event('pagehide')));
      await pause(200);
      const r = await p.page.evaluate(() => ({ beacons: window.__beacons, st: window.a.status()[0] }));
      assert.equal(r.beacons, 0, 'no sendBeacon offline');
      assert.equal(r.st.delivered, 1);
      assert.equal(r.st.pending, 3);
      assert.equal((await outboxKeys(p.page)).length, 3);
      await p.context.setOffline(false);
      await p.page.evaluate(() => window.a.flush());
      await sinkHasExactly(url, [...warm, ...ids]);
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'empty outbox' });
      assert.deepEqual(p.runtimeErrors(), []);
      await p.close();
    });
  });

  test('flush() settles at once when the events wait for a retry, an open circuit or the network', async () => {
    await withServer(async ({ url }) => {
      /** Whether `flush()` settles within 2 s. */
      const flushSettles = (page) =>
        page.evaluate(() =>
          Promise.race([
            window.a.flush().then(() => true),
            new Promise((r) => setTimeout(() => r(false), 2000)),
          ]),
        );
      await setSinkMode(url, { mode: 'fail', status: 503 });
      for (const [label, extra] of [
        ['retry backoff', { retry: { baseDelayMs: 60000, maxDelayMs: 60000, jitter: false } }],
        [
          'open circuit',
          {
            retry: { maxRetries: 10, baseDelayMs: 10, maxDelayMs: 10, jitter: false },
            circuitBreaker: { failureThreshold: 1, recoveryTimeoutMs: 60000 },
          },
        ],
      ]) {
        const p = await openPage(browser, null);
        await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 60000 }, extra));
        const before = (await sinkEvents(url)).requests;
        await track(p.page, 1);
        assert.ok(await flushSettles(p.page), `${label}: the first flush settles on the failure`);
        assert.equal((await sinkEvents(url)).requests, before + 1);
        await pause(50);
        assert.ok(await flushSettles(p.page), `${label}: a flush while the events wait settles`);
        assert.equal((await sinkEvents(url)).requests, before + 1, `${label}: nothing sent`);
        assert.equal((await p.page.evaluate(() => window.a.status()))[0].pending, 1);
        await p.close();
      }
      await setSinkMode(url, { mode: 'ok' });
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ batchSize: 100, flushIntervalMs: 60000 }));
      await p.context.setOffline(true);
      const ids = await track(p.page, 1);
      assert.ok(await flushSettles(p.page), 'offline: flush settles');
      assert.equal((await p.page.evaluate(() => window.a.status()))[0].pending, 1);
      await p.context.setOffline(false);
      await p.page.evaluate(() => window.a.flush());
      await sinkHasExactly(url, ids);
      await p.close();
    });
  });

  test('writeKey goes in the body and as a Basic Authorization header', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      const sent = [];
      p.page.on('request', (r) => {
        if (r.url().endsWith('/v1/batch')) sent.push({ body: r.postData(), headers: r.headers() });
      });
      await boot(p.page, url, relayConfig({ writeKey: 'wk-sécret', headers: { 'X-Site': 'shop' } }));
      const ids = await track(p.page, 1);
      await p.page.evaluate(() => window.a.flush());
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.lastAuthorization, 'Basic ' + Buffer.from('wk-sécret:').toString('base64'));
      const body = JSON.parse(sent[0].body);
      assert.equal(body.writeKey, 'wk-sécret');
      assert.match(body.sentAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.deepEqual(body.batch.map((e) => e.messageId), ids);
      assert.equal(sent[0].headers['x-site'], 'shop');
      assert.equal(await p.page.evaluate(() => window.a.testDestination('relay')), true);
      await setSinkMode(url, { mode: 'fail', status: 500 });
      assert.equal(await p.page.evaluate(() => window.a.testDestination('relay')), false);
      await p.close();
    });
  });
  test('a configured header replaces the default of the same name in any letter case', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      const sent = [];
      p.page.on('request', (r) => {
        if (r.url().endsWith('/v1/batch')) sent.push(r.headers());
      });
      await boot(
        p.page,
        url,
        relayConfig({
          writeKey: 'wk',
          headers: { authorization: 'Bearer token-123', 'content-type': 'application/json; charset=utf-8' },
        }),
      );
      const ids = await track(p.page, 1);
      await p.page.evaluate(() => window.a.flush());
      const s = await sinkHasExactly(url, ids);
      assert.equal(s.lastAuthorization, 'Bearer token-123');
      assert.equal(s.lastContentType, 'application/json; charset=utf-8');
      assert.equal(sent[0].authorization, 'Bearer token-123');
      await p.close();
    });
  });
  test('maxBatchBytes bounds the whole request body, wrapper and separators included', async () => {
    await withServer(async ({ url }) => {
      const track6 = (page) =>
        page.evaluate(() => Array.from({ length: 6 }, () => window.a.track('E', { pad: 'x'.repeat(500) })));
      // The size of one such event's JSON, from a first page.
      const first = await openPage(browser, null);
      const sent = [];
      first.page.on('request', (r) => r.url().endsWith('/v1/batch') && sent.push(r.postData()));
      await boot(first.page, url, relayConfig({ writeKey: 'wk', flushIntervalMs: 60000 }));
      await first.page.evaluate(() => window.a.track('E', { pad: 'x'.repeat(500) }));
      await first.page.evaluate(() => window.a.flush());
      const one = Buffer.byteLength(JSON.stringify(JSON.parse(sent[0]).batch[0]));
      await first.close();
      // Room for two events' JSON, not for the body around them.
      const max = 2 * one + 30;
      const p = await openPage(browser, null);
      const bodies = [];
      p.page.on('request', (r) => r.url().endsWith('/v1/batch') && bodies.push(Buffer.byteLength(r.postData())));
      await boot(p.page, url, relayConfig({ writeKey: 'wk', batchSize: 100, maxBatchBytes: max, flushIntervalMs: 60000 }));
      const ids = await track6(p.page);
      await p.page.evaluate(() => window.a.flush());
      await waitFor(async () => (await sinkEvents(url)).count >= 7, { message: 'all events' });
      assert.equal(bodies.length, 6, `${bodies}`);
      for (const n of bodies) assert.ok(n <= max, `a body of ${n} bytes, maxBatchBytes ${max}`);
      assert.ok((await sinkEvents(url)).events.some((e) => e.messageId === ids[5]));
      await p.close();
    });
  });
  test('purgeOnRevoke: false: a page hide does not hand over the events kept for a relay whose consent is missing', async () => {
    await withServer(async ({ url }) => {
      const config = {
        purgeOnRevoke: false,
        consent: { measurement: true },
        destinations: [
          { type: 'relay', requiredConsent: ['measurement'], settings: { endpoint: '/v1/batch', flushIntervalMs: 60000 } },
        ],
      };
      const p = await openPage(browser, null);
      await boot(p.page, url, config);
      const warm = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      const kept = await track(p.page, 1, 'Kept');
      await p.page.evaluate(() => window.a.setConsent({ measurement: false }));
      await setVisibility(p.page, 'hidden');
      await pause(500);
      const s = await sinkEvents(url);
      const got = s.events.map((e) => e.messageId);
      assert.ok(got.includes(warm[0]));
      assert.ok(!got.includes(kept[0]), 'the kept event waits for consent');
      assert.ok(s.events.some((e) => e.event.type === 'consent'), 'the revocation itself goes');
      assert.ok((await p.page.evaluate(() => window.a.status()[0].pending)) >= 1);
      await p.close();
    });
  });

  test('a keepalive hand-over that fails after the page delivered its events leaves nothing in the outbox', async () => {
    await withServer(async ({ url }) => {
      // The page-hide request is held, then refused; the page's own delivery is accepted.
      await setSinkMode(url, { mode: 'sequence', statuses: [{ status: 503, delayMs: 1500 }, 200] });
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ headers: { 'X-Site': 'shop' }, flushIntervalMs: 60000 }));
      const ids = await track(p.page, 2);
      await setVisibility(p.page, 'hidden');
      await setVisibility(p.page, 'visible');
      await p.page.evaluate(() => window.a.flush());
      await sinkHasExactly(url, ids);
      // Once the held request is answered (503), the delivered events leave the outbox.
      await waitFor(async () => (await outboxKeys(p.page)).length === 0, { message: 'delivered events forgotten' });
      assert.equal((await sinkEvents(url)).requests, 2);
      await p.close();
    });
  });

  test('page-hide beacons stay within maxBatchBytes', async () => {
    await withServer(async ({ url }) => {
      // The first batch is held, so the next events are still pending when the page hides.
      await setSinkMode(url, { mode: 'sequence', statuses: [{ status: 200, delayMs: 1500 }] });
      const p = await openPage(browser, null);
      const beacons = [];
      p.page.on('request', (r) => {
        if (r.url().endsWith('/v1/batch') && /^text\/plain/.test(r.headers()['content-type'] ?? '')) {
          beacons.push(Buffer.byteLength(r.postData() ?? ''));
        }
      });
      const max = 3000;
      await boot(p.page, url, relayConfig({ batchSize: 1, maxBatchBytes: max, flushIntervalMs: 60000 }));
      const first = await track(p.page, 1, 'First');
      await pause(100);
      const ids = await p.page.evaluate(() =>
        Array.from({ length: 8 }, (_, i) => window.a.track(`Later ${i}`, { pad: 'x'.repeat(400) })),
      );
      await setVisibility(p.page, 'hidden');
      await sinkHasAll(url, [...first, ...ids]);
      assert.ok(beacons.length > 1, `beacons ${beacons}`);
      for (const n of beacons) assert.ok(n <= max, `a beacon of ${n} bytes, maxBatchBytes ${max}`);
      await p.close();
    });
  });
  test("a keepalive fetch the browser refuses at unload (another script's beacon took the allowance) loses nothing", async () => {
    await withServer(async ({ url }) => {
      const config = relayConfig({ headers: { 'X-Site': 'shop' }, batchSize: 1000, flushIntervalMs: 60000 });
      const p = await openPage(browser, null);
      await p.page.goto(`${url}/blank.html`);
      // Another tag of the page sends a 30 KB beacon at page hide, before the client does.
      await p.page.evaluate(() =>
        window.addEventListener('pagehide', () => navigator.sendBeacon('/__other', 'y'.repeat(30000))),
      );
      await boot(p.page, url, config, { navigate: false });
      const warm = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      const ids = await p.page.evaluate(() =>
        Array.from({ length: 25 }, (_, i) => window.a.track(`Big ${i}`, { pad: 'x'.repeat(1000) })),
      );
      await p.page.goto(`${url}/blank.html`);
      await pause(500);
      await boot(p.page, url, config, { navigate: false });
      await sinkHasAll(url, [...warm, ...ids]);
      await p.close();
    });
  });
  test('a keepalive hand-over the backend acknowledged while the page runs is not sent again after a tab switch', async () => {
    await withServer(async ({ url }) => {
      const p = await openPage(browser, null);
      await boot(p.page, url, relayConfig({ headers: { 'X-Site': 'shop' }, flushIntervalMs: 60000 }));
      const warm = await track(p.page, 1, 'Warm');
      await p.page.evaluate(() => window.a.flush());
      const ids = await track(p.page, 1, 'Before switch');
      await setVisibility(p.page, 'hidden');
      await sinkHasExactly(url, [...warm, ...ids]);
      await pause(200);
      await setVisibility(p.page, 'visible');
      const flushed = await p.page.evaluate(() =>
        Promise.race([window.a.flush().then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]),
      );
      assert.ok(flushed, 'flush() settles');
      await pause(300);
      await sinkHasExactly(url, [...warm, ...ids]);
      const st = await p.page.evaluate(() => window.a.status()[0]);
      assert.deepEqual([st.pending, st.delivered], [0, 2]);
      assert.deepEqual(await outboxKeys(p.page), []);
      await p.close();
    });
  });
});
