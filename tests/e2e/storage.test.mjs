// Storage that throws (disabled, blocked, Safari private mode) degrades to memory with one
// warning: load, track, identify and delivery keep working, and no exception reaches the page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, waitFor, sinkEvents } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('a localStorage that throws on access degrades to memory with one warning', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, null);
    await p.page.addInitScript(() => {
      Object.defineProperty(window, 'localStorage', {
        configurable: true,
        get() { throw new DOMException('The operation is insecure.', 'SecurityError'); },
      });
    });
    await p.page.goto(`${server.url}/blank.html`);
    const result = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.__got = [];
      m.Analytics.registerDestination('mem', () => ({
        track(e) { window.__got.push([e.event, e.userId, e.anonymousId]); },
      }));
      const a = await m.Analytics.load({
        destinations: [{ type: 'mem' }, { type: 'relay', settings: { endpoint: '/v1/batch' } }],
      });
      a.identify('user-7', { plan: 'pro' });
      const id = a.track('Still works');
      window.analytics = a;
      return id;
    });
    assert.match(result, /^[0-9a-f-]{36}$/);
    await waitFor(() => p.page.evaluate(() => window.__got.length === 1));
    await p.page.evaluate(() => window.analytics.flush());
    await waitFor(async () => (await sinkEvents(server.url)).events.some((e) => e.event.event === 'Still works'), {
      message: 'the relay delivered from its in-memory outbox',
    });
    const [[name, userId, anon]] = await p.page.evaluate(() => window.__got);
    assert.equal(name, 'Still works');
    assert.equal(userId, 'user-7', 'identity kept in memory');
    assert.match(anon, /^[0-9a-f-]{36}$/);
    const warnings = p.messages.filter((m) => m.type === 'warning' && m.text.includes('[consent-analytics]'));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0].text, /localStorage/);
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('identity changes made in another tab are followed, as analytics.js reads them from storage', async () => {
  await withServer(async (server) => {
    const context = await browser.newContext();
    const boot = (page) =>
      page.evaluate(async () => {
        const m = await import('/pkg/consent_analytics.js');
        await m.default();
        window.__got = [];
        window.__changed = [];
        addEventListener('storage', (e) => window.__changed.push(e.key));
        m.Analytics.registerDestination('mem', () => ({
          track(e) { window.__got.push({ userId: e.userId ?? null, anonymousId: e.anonymousId }); },
        }));
        window.analytics = await m.Analytics.load({ destinations: [{ type: 'mem' }] });
      });
    const [a, b] = [await context.newPage(), await context.newPage()];
    for (const p of [a, b]) {
      await p.goto(`${server.url}/blank.html`);
      await boot(p);
    }
    // The stored key changed in `p`'s view (this library's listener, added first, has run).
    const changed = (p, key) =>
      waitFor(() => p.evaluate((k) => window.__changed.includes(`consent-analytics:${k}`), key), {
        message: `a storage event for ${key}`,
      });
    // Tracks in `p`; the identity its event carried.
    const seen = async (p) => {
      const n = await p.evaluate(() => (analytics.track('Look'), window.__got.length));
      await waitFor(() => p.evaluate((n) => window.__got.length === n + 1, n));
      return p.evaluate(() => window.__got.at(-1));
    };

    const anon = (await seen(a)).anonymousId;
    assert.equal((await seen(b)).anonymousId, anon, 'one visitor, one anonymous id');
    await a.evaluate(() => analytics.identify('user-1', { a: 1 }));
    await changed(b, 'userId');
    assert.deepEqual(await seen(b), { userId: 'user-1', anonymousId: anon });

    // Traits identified in B are merged with those A stored.
    await changed(b, 'traits');
    await b.evaluate(() => analytics.identify(null, { b: 2 }));
    const traits = await b.evaluate(() => JSON.parse(localStorage.getItem('consent-analytics:traits')));
    assert.deepEqual(traits, { a: 1, b: 2 });

    // A logs out: B forgets the user and takes the new anonymous id.
    await b.evaluate(() => { window.__changed = []; });
    await a.evaluate(() => analytics.reset());
    await changed(b, 'anonymousId');
    const after = await seen(b);
    assert.equal(after.userId, null);
    assert.notEqual(after.anonymousId, anon);
    assert.equal(after.anonymousId, (await seen(a)).anonymousId);
    await context.close();
  });
});
