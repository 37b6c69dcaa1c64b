// End-to-end tests of the package entry (pkg/index.js) in Chromium: the client in waiting that
// `Analytics.load` returns at once. Calls made before the load keep their messageId, time and
// page; they are applied in call order and checked by the client when applied; a failed load
// drops them with one console error; `registerDestination` works before the wasm is ready.
//
//   npm run build && node --test tests/e2e/entry.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, sinkEvents, waitFor } from './harness.mjs';

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** Opens the blank page and runs `fn` there with the entry module as its argument. */
async function inPage(server, fn, arg) {
  const p = await openPage(browser, `${server.url}/blank.html`);
  const result = await p.page.evaluate(
    async ([source, a]) => {
      const m = await import('/pkg/index.js');
      // eslint-disable-next-line no-new-func
      return new Function('m', 'arg', `return (${source})(m, arg);`)(m, a);
    },
    [fn.toString(), arg],
  );
  return { p, result };
}

test('calls before the load return at once, keep their messageId, time and page, and apply in order', () =>
  withServer(async (server) => {
    const { p, result } = await inPage(server, async ({ Analytics }) => {
      const seen = [];
      Analytics.registerDestination('collector', () => ({
        track: (e) => seen.push(['track', e.event, e.messageId]),
        page: (e) => seen.push(['page', e.properties.path, e.context.page.path]),
        identify: (e) => seen.push(['identify', e.userId]),
      }));
      const analytics = Analytics.load({
        destinations: [
          { type: 'relay', settings: { endpoint: '/v1/batch', flushIntervalMs: 50 } },
          { type: 'collector' },
        ],
      });
      const typeofTrack = typeof analytics.track;
      const t0 = new Date().toISOString();
      const first = analytics.track('First', { n: 1 });
      const page = analytics.page('Home');
      const own = analytics.track('Own Id', {}, { messageId: 'mine-1', context: { page: { title: 'Mine' } } });
      const identified = analytics.identify('user-1', { plan: 'pro' });
      const consent = analytics.setConsent({ measurement: true });
      const before = { consent: analytics.consent(), status: analytics.status(), dead: analytics.deadLetters() };
      const t1 = new Date().toISOString();
      // A single-page app moves on while the client loads.
      history.pushState({}, '', '/elsewhere?x=1');
      const loaded = await analytics;
      await consent;
      const after = loaded.track('After');
      await loaded.flush();
      return {
        typeofTrack,
        ids: { first, page, own, identified, after },
        t0,
        t1,
        before,
        consentAfter: loaded.consent(),
        seen,
        isAnalytics: loaded instanceof Analytics,
        same: (await analytics) === loaded,
      };
    });
    assert.equal(result.typeofTrack, 'function');
    assert.equal(result.ids.own, 'mine-1', "the caller's messageId wins");
    assert.match(result.ids.first, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(result.before, {
      consent: { necessary: true, functionality: false, experience: false, measurement: false, marketing: false },
      status: [],
      dead: [],
    });
    assert.equal(result.consentAfter.measurement, true, 'setConsent before the load applied');
    assert.ok(result.isAnalytics, 'awaiting gives an Analytics');
    assert.ok(result.same);
    assert.deepEqual(result.seen, [
      ['track', 'First', result.ids.first],
      ['page', '/blank.html', '/blank.html'],
      ['track', 'Own Id', 'mine-1'],
      ['identify', 'user-1'],
      ['track', 'After', result.ids.after],
    ]);
    const sink = await waitFor(
      async () => {
        const s = await sinkEvents(server.url);
        return s.events.some((r) => r.messageId === result.ids.after) ? s : null;
      },
      { message: 'the events at the sink' },
    );
    const events = sink.events.map((r) => r.event).filter((e) => e.type !== 'consent');
    assert.deepEqual(
      events.map((e) => e.messageId),
      [result.ids.first, result.ids.page, 'mine-1', result.ids.identified, result.ids.after],
    );
    const [first, page, own] = events;
    assert.ok(first.timestamp >= result.t0 && first.timestamp <= result.t1, 'the time of the call');
    assert.equal(first.context.page.path, '/blank.html', 'the page of the call');
    assert.equal(page.properties.path, '/blank.html');
    assert.equal(page.name, 'Home');
    assert.equal(own.context.page.title, 'Mine', "the caller's context.page wins key by key");
    assert.equal(own.context.page.path, '/blank.html');
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  }));

test('a bad call before the load is dropped with a console error naming the argument', () =>
  withServer(async (server) => {
    const { p, result } = await inPage(server, async ({ Analytics }) => {
      const analytics = Analytics.load({ destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch' } }] });
      const bad = analytics.track(42);
      const good = analytics.track('Good');
      const rejected = analytics.setConsent({ analytics: true }).then(
        () => 'resolved',
        (e) => `${e.constructor.name}: ${e.message}`,
      );
      const loaded = await analytics;
      await loaded.flush();
      return { bad: typeof bad, good, rejected: await rejected };
    });
    assert.equal(result.bad, 'string', 'an event call returns a messageId at once, even a bad one');
    assert.match(result.rejected, /analytics/, 'a Promise call rejects with the error');
    const errors = p.messages.filter((m) => m.type === 'error' && !/favicon|Failed to load resource/.test(m.text)).map((m) => m.text);
    assert.equal(errors.length, 1, `one console error: ${errors}`);
    assert.match(errors[0], /track.*event/);
    const sink = await waitFor(
      async () => {
        const s = await sinkEvents(server.url);
        return s.count >= 1 ? s : null;
      },
      { message: 'the good event at the sink' },
    );
    assert.deepEqual(
      sink.events.map((r) => r.messageId),
      [result.good],
    );
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  }));

test('a failed load rejects naming the field and drops the earlier calls with one console error', () =>
  withServer(async (server) => {
    const { p, result } = await inPage(server, async ({ Analytics }) => {
      const analytics = Analytics.load({ destinatons: [] });
      analytics.track('A');
      analytics.track('B');
      analytics.page();
      const failed = await analytics.then(
        () => 'loaded',
        (e) => `${e.constructor.name}: ${e.message}`,
      );
      // Afterwards the instance does nothing and never throws.
      const later = typeof analytics.track('C');
      return { failed, later };
    });
    assert.match(result.failed, /^Error: .*destinatons/);
    assert.equal(result.later, 'string');
    const errors = p.messages.filter((m) => m.type === 'error' && !/favicon|Failed to load resource/.test(m.text)).map((m) => m.text);
    assert.equal(errors.length, 1, `one console error: ${errors}`);
    assert.match(errors[0], /destinatons/);
    assert.match(errors[0], /\b3\b/, 'it says how many calls were dropped');
    assert.deepEqual(p.errors, [], 'no unhandled rejection');
    await p.close();
  }));
