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
