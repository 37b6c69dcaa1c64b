// The status and listener API in Chromium: on/off for 'loaded', 'delivered', 'error',
// 'consent'; testDestination over a JavaScript destination's testConnection(); status() fields.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, waitFor } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('listeners receive loaded, delivered, error and consent; off stops them', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      m.Analytics.registerDestination('good', () => ({ track() {}, testConnection: () => true }));
      m.Analytics.registerDestination('bad', () => ({
        track() { throw new Error('nope'); },
        async testConnection() { return false; },
      }));
      m.Analytics.registerDestination('broken-test', () => ({
        testConnection() { throw new Error('cannot reach'); },
      }));
      window.seen = [];
      window.a = await m.Analytics.load({
        retry: { maxRetries: 0 },
        destinations: [{ type: 'good' }, { type: 'bad' }, { type: 'broken-test' }],
      });
      for (const name of ['loaded', 'delivered', 'error', 'consent']) {
        a.on(name, (payload) => window.seen.push([name, payload]));
      }
      window.dropped = () => window.seen.push(['should not be called']);
      a.on('delivered', window.dropped);
      a.off('delivered', window.dropped);
    });
    const id = await p.page.evaluate(() => a.track('Hello'));
    await waitFor(() => p.page.evaluate(() => window.seen.some(([n]) => n === 'error')), {
      message: 'an error event',
    });
    await waitFor(() => p.page.evaluate(() => window.seen.some(([n]) => n === 'delivered')));
    await p.page.evaluate(() => a.setConsent({ marketing: true }));
    const seen = await p.page.evaluate(() => window.seen);
    const of = (name) => seen.filter(([n]) => n === name).map(([, v]) => v);
    assert.ok(of('loaded').some((v) => v.destination === 'good'));
    const delivered = of('delivered').find((v) => v.destination === 'good');
    assert.equal(delivered.messageId, id);
    assert.equal(delivered.event.event, 'Hello');
    const error = of('error').find((v) => v.destination === 'bad');
    assert.equal(error.error.kind, 'unknown');
    assert.equal(error.error.message, 'nope');
    assert.equal(of('consent')[0].marketing, true);
    assert.equal(of('consent')[0].necessary, true);
    assert.ok(!seen.some(([n]) => n === 'should not be called'), 'off removed the listener');

    const tests = await p.page.evaluate(async () => [
      await a.testDestination('good'),
      await a.testDestination('bad'),
      await a.testDestination('broken-test'),
      await a.testDestination('missing').then(() => 'resolved', (e) => e.message),
    ]);
    assert.deepEqual(tests, [true, false, false, 'unknown destination id: missing']);

    const status = await p.page.evaluate(() => a.status());
    const bad = status.find((s) => s.id === 'bad');
    assert.deepEqual(Object.keys(bad).sort(), [
      'circuit', 'deadLettered', 'delivered', 'failed', 'id', 'lastError', 'pending', 'skipped', 'state', 'type',
    ]);
    assert.equal(bad.type, 'bad');
    assert.equal(bad.state, 'loaded');
    assert.equal(bad.circuit, 'closed');
    assert.equal(bad.failed, 1);
    assert.equal(bad.deadLettered, 1, 'maxRetries 0: straight to the dead-letter queue');
    assert.equal(bad.lastError.kind, 'unknown');
    const good = status.find((s) => s.id === 'good');
    assert.equal(good.delivered, 2, 'the track event and the consent event');
    assert.equal(good.lastError, null);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('on() with an unknown event name throws a TypeError naming it', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const message = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const a = await m.Analytics.load({});
      try {
        a.on('deliverd', () => {});
        return 'no error';
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    });
    assert.match(message, /^TypeError: .*'deliverd'/);
    await p.close();
  });
});

test('a testConnection() that never settles makes testDestination resolve false after loading.timeoutMs', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      m.Analytics.registerDestination('hang', () => ({ testConnection: () => new Promise(() => {}), track() {} }));
      const a = await m.Analytics.load({ loading: { timeoutMs: 300 }, destinations: [{ type: 'hang' }] });
      const t0 = performance.now();
      const v = await Promise.race([
        a.testDestination('hang'),
        new Promise((res) => setTimeout(() => res('pending after 3 s'), 3000)),
      ]);
      return { v, ms: performance.now() - t0 };
    });
    assert.equal(r.v, false);
    assert.ok(r.ms >= 250 && r.ms < 2000, `answered after ${r.ms} ms`);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('onError(error, event) is called when a delivery hook times out, as when it throws', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.calls = [];
      window.after = [];
      m.Analytics.registerDestination('d', () => ({
        track(e) {
          if (e.event === 'throw') throw new Error('thrown');
          // Settles after the timeout: too late to count.
          return new Promise((res) => setTimeout(res, 600));
        },
        onAfterEvent(e) {
          after.push(e.event);
        },
        onError(err, e) {
          calls.push([err instanceof Error, err.kind ?? null, err.message, e.event]);
        },
      }));
      window.a = await m.Analytics.load({
        loading: { timeoutMs: 300 },
        retry: { maxRetries: 0 },
        destinations: [{ type: 'd', requiredConsent: [] }],
      });
      a.track('throw');
      a.track('slow');
    });
    await waitFor(() => p.page.evaluate(() => calls.length === 2), { message: 'two onError calls' });
    await new Promise((r) => setTimeout(r, 800));
    const r = await p.page.evaluate(() => ({ calls, after, status: a.status()[0] }));
    assert.deepEqual(r.calls, [
      [true, null, 'thrown', 'throw'],
      [true, 'timeout', 'destination did not answer in time', 'slow'],
    ]);
    assert.deepEqual(r.after, [], 'a late answer is not followed by onAfterEvent');
    assert.equal(r.status.deadLettered, 2);
    assert.equal(r.status.lastError.kind, 'timeout');
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('a destination factory that returns a promise or another thenable fails the load, naming the entry', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.got = [];
      m.Analytics.registerDestination('async-factory', async () => ({ track: (e) => got.push(e.event) }));
      m.Analytics.registerDestination('thenable', () => ({ then() {}, track: (e) => got.push(e.event) }));
      const out = [];
      for (const type of ['async-factory', 'thenable']) {
        out.push(await m.Analytics.load({ destinations: [{ type, requiredConsent: [] }] })
          .then(() => 'loaded', (e) => `${e.name}: ${e.message}`));
      }
      return out;
    });
    for (const m of r) {
      assert.match(m, /^Error: .*destinations\[0\].*destination factory must return the destination object synchronously, not a Promise/);
    }
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('testDestination on a vendor tag or script destination says whether it is loaded', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.a = await m.Analytics.load({
        loading: { maxRetries: 0, timeoutMs: 2000 },
        retry: { maxRetries: 0 },
        destinations: [
          { type: 'ga4', requiredConsent: [], settings: { measurementId: 'G-1', scriptSrc: '/missing.js' } },
          { type: 'posthog', requiredConsent: [], settings: { apiKey: 'k', scriptSrc: '/fake/posthog.js' } },
          { type: 'meta-pixel', settings: { pixelId: '1', scriptSrc: '/fake/fbevents.js' } },
          { type: 'script', id: 'tag-ok', settings: { scripts: [{ id: 'ok-js', src: '/fake/slow.js?ms=0' }] } },
          { type: 'script', id: 'tag-bad', settings: { scripts: [{ id: 'bad-js', src: '/missing-tag.js' }] } },
        ],
      });
      a.track('T');
    });
    const states = () => p.page.evaluate(() => Object.fromEntries(a.status().map((s) => [s.id, s.state])));
    await waitFor(async () => {
      const s = await states();
      return !Object.values(s).some((v) => v === 'loading' || v === 'registered');
    }, { message: 'loads settled' });
    assert.deepEqual(await states(), {
      ga4: 'failed', posthog: 'loaded', 'meta-pixel': 'blocked', 'tag-ok': 'loaded', 'tag-bad': 'failed',
    });
    const test = () => p.page.evaluate(async () => {
      const out = {};
      for (const s of a.status()) out[s.id] = await a.testDestination(s.id);
      return out;
    });
    assert.deepEqual(await test(), {
      ga4: false, posthog: true, 'meta-pixel': false, 'tag-ok': true, 'tag-bad': false,
    });
    await p.page.evaluate(() => a.unloadDestination('posthog'));
    assert.equal(await p.page.evaluate(() => a.testDestination('posthog')), false, 'unloaded');
    await p.page.evaluate(() => { a.setConsent({ marketing: true }); a.track('T2'); });
    await waitFor(async () => (await states())['meta-pixel'] === 'loaded', { message: 'meta-pixel loads' });
    assert.equal(await p.page.evaluate(() => a.testDestination('meta-pixel')), true);
    await p.page.evaluate(() => a.setConsent({ marketing: false }));
    assert.equal(await p.page.evaluate(() => a.testDestination('meta-pixel')), false, 'consent revoked');
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('setConsent, retryDestination and unloadDestination resolve once their work is done', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const states = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.initFails = true;
      m.Analytics.registerDestination('flaky', () => ({
        initialize() {
          // Settles later than a microtask: the load's end is not reached by accident.
          return new Promise((resolve, reject) =>
            setTimeout(() => (window.initFails ? reject(new Error('not yet')) : resolve()), 50),
          );
        },
        track() {},
      }));
      const a = await m.Analytics.load({
        consent: { marketing: true },
        loading: { maxRetries: 0 },
        destinations: [{ type: 'flaky', requiredConsent: ['marketing'] }],
      });
      const state = () => a.status()[0].state;
      const seen = {};
      await a.preload();
      seen.afterFailedPreload = state();
      window.initFails = false;
      await a.retryDestination('flaky');
      seen.afterRetry = state();
      await a.setConsent({ marketing: false });
      seen.afterRevoke = state();
      await a.setConsent({ marketing: true });
      seen.afterGrant = state();
      await a.unloadDestination('flaky');
      seen.afterUnload = state();
      return seen;
    });
    assert.deepEqual(states, {
      afterFailedPreload: 'failed',
      afterRetry: 'loaded',
      afterRevoke: 'blocked',
      afterGrant: 'loaded',
      afterUnload: 'unloaded',
    });
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('with lazy loading, a destination allowed by a grant hears its consent event first when it loads', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const hooks = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const hooks = [];
      m.Analytics.registerDestination('js', () => ({
        initialize() { hooks.push('initialize'); },
        consent(e) { hooks.push(`consent ${e.consent.categoryPreferences.marketing}`); },
        track(e) { hooks.push(`track ${e.event}`); },
      }));
      const a = await m.Analytics.load({ destinations: [{ type: 'js', requiredConsent: ['marketing'] }] });
      a.track('before');
      await a.setConsent({ functionality: true });
      await a.setConsent({ marketing: true });
      await a.setConsent({ experience: true });
      await new Promise((r) => setTimeout(r, 100));
      const loadedByGrant = a.status()[0].state;
      a.track('after');
      await new Promise((r) => setTimeout(r, 300));
      return { hooks, loadedByGrant };
    });
    // A grant alone loads nothing (lazy); the latest change reaches it ahead of its first event.
    assert.equal(hooks.loadedByGrant, 'registered');
    assert.deepEqual(hooks.hooks, ['initialize', 'consent true', 'track after']);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('loading again after unloadDestination makes a new instance from the factory', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const made = [];
      let instances = 0;
      m.Analytics.registerDestination('counted', () => {
        const n = ++instances;
        made.push(n);
        return { track: (e) => made.push(`${n}:${e.event}`), destroy: () => made.push(`${n}:destroy`) };
      });
      const a = await m.Analytics.load({ destinations: [{ type: 'counted', requiredConsent: [] }] });
      a.track('one');
      await new Promise((r) => setTimeout(r, 100));
      await a.unloadDestination('counted');
      await new Promise((r) => setTimeout(r, 50));
      a.track('two');
      await new Promise((r) => setTimeout(r, 100));
      return made;
    });
    assert.deepEqual(r, [1, '1:one', '1:destroy', 2, '2:two']);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('an event onBeforeEvent skips with null is counted as skipped, not delivered', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const got = [];
      m.Analytics.registerDestination('picky', () => ({
        onBeforeEvent: (e) => (e.event === 'Skip me' ? null : e),
        track: (e) => got.push(e.event),
      }));
      const a = await m.Analytics.load({ destinations: [{ type: 'picky', requiredConsent: [] }] });
      const delivered = [];
      a.on('delivered', (d) => delivered.push(d.event.event));
      a.track('Keep');
      a.track('Skip me');
      a.track('Keep too');
      await new Promise((r) => setTimeout(r, 300));
      const { delivered: n, skipped, pending } = a.status()[0];
      return { got, delivered, n, skipped, pending };
    });
    assert.deepEqual(r, {
      got: ['Keep', 'Keep too'],
      delivered: ['Keep', 'Keep too'],
      n: 2,
      skipped: 1,
      pending: 0,
    });
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});
