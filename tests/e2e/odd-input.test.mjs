// No input, however odd, reaches a Rust panic: every public method is called with hostile
// values (throwing getters, proxies, symbols, BigInt, huge and cyclic structures, wrong types),
// and each call either works or throws/rejects an ordinary Error; the page never sees a
// `RuntimeError: unreachable`, and the client keeps working afterwards.

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

test('hostile arguments never reach a Rust panic and the client keeps working', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const report = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const got = [];
      m.Analytics.registerDestination('sink', () => ({ track(e) { got.push(e.event); } }));
      const throwing = new Proxy({}, { get() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } });
      const getter = { get boom() { throw new Error('getter'); } };
      const cyclic = { a: 1 }; cyclic.self = cyclic;
      const deep = {}; let cur = deep; for (let i = 0; i < 5000; i++) { cur.n = {}; cur = cur.n; }
      const odd = [undefined, null, 0, -1, NaN, Infinity, 2 ** 64, '', ' ', 'x'.repeat(100000), Symbol('s'),
        10n, () => 1, [], [1, [2]], {}, throwing, getter, cyclic, deep, new Date(), new Map([[1, 2]]),
        Object.create(null), new (class Foo {})(), { toJSON() { throw new Error('toJSON'); } }];
      const outcomes = { ok: 0, errors: 0, runtime: [] };
      const record = (e) => {
        if (e instanceof WebAssembly.RuntimeError || /unreachable|panicked/i.test(String(e && e.message))) {
          outcomes.runtime.push(String(e && e.stack || e));
        } else {
          outcomes.errors++;
        }
      };
      // load with odd configs
      for (const c of odd) {
        try { await m.Analytics.load(c); outcomes.ok++; } catch (e) { record(e); }
        try { await m.Analytics.load({ destinations: [c] }); outcomes.ok++; } catch (e) { record(e); }
        try { await m.Analytics.load({ consent: c }); outcomes.ok++; } catch (e) { record(e); }
        try { await m.Analytics.load({ retry: { maxRetries: c } }); outcomes.ok++; } catch (e) { record(e); }
        try { m.Analytics.registerDestination(c, c); outcomes.ok++; } catch (e) { record(e); }
      }
      const a = await m.Analytics.load({ destinations: [{ type: 'sink' }] });
      const methods = ['track', 'page', 'identify', 'group', 'alias'];
      for (const name of methods) {
        for (const x of odd) {
          for (const args of [[x], ['E', x], ['E', {}, x], [x, x, x]]) {
            try { a[name](...args); outcomes.ok++; } catch (e) { record(e); }
          }
        }
      }
      for (const x of odd) {
        for (const call of [
          () => a.setConsent(x), () => a.on(x, x), () => a.off(x, x), () => a.addSourceMiddleware(x),
          () => a.deadLetters(x), () => a.retryDeadLetters(x), () => a.clearDeadLetters(x),
          () => a.retryDestination(x), () => a.unloadDestination(x), () => a.testDestination(x),
        ]) {
          try { await call(); outcomes.ok++; } catch (e) { record(e); }
        }
      }
      // The barrage registered odd middleware on `a` (a function returning 1 drops every
      // event, correctly); the module itself must still work: a fresh client delivers.
      outcomes.consentStillReadable = Object.keys(a.consent()).length === 5;
      const b = await m.Analytics.load({ destinations: [{ type: 'sink' }] });
      b.track('Still alive', { fine: true });
      await b.flush();
      const start = Date.now();
      while (!got.includes('Still alive') && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 20));
      outcomes.alive = got.includes('Still alive');
      return outcomes;
    });
    assert.deepEqual(report.runtime, [], 'no Rust panic reached JavaScript');
    assert.ok(report.errors > 100, `ordinary errors were thrown (${report.errors})`);
    assert.ok(report.alive, 'the client still delivers after all that');
    assert.ok(report.consentStillReadable);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

// Issue 17, "event data stays data": `JSON.parse` of user input makes `__proto__` an own key.
// It must stay an own key (never the prototype) in what a JavaScript destination receives, in
// the stored traits and in what the relay sends.
test('a __proto__ key in traits, properties or options.context stays an own key everywhere', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const report = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const got = {};
      const keep = (e) => { got[e.type] = e; };
      m.Analytics.registerDestination('keeper', () => ({ track: keep, page: keep, identify: keep }));
      const copies = {};
      m.Analytics.registerDestination('copier', () => ({
        onBeforeEvent(e) { return e; },
        track(e) { copies[e.type] = e; },
        identify(e) { copies[e.type] = e; },
      }));
      const a = await m.Analytics.load({
        destinations: [
          { type: 'keeper', requiredConsent: [] },
          { type: 'copier', requiredConsent: [] },
          { type: 'relay', settings: { endpoint: '/v1/batch', flushIntervalMs: 50 } },
        ],
      });
      const evil = () => JSON.parse('{"__proto__": {"isAdmin": true}, "plan": "free"}');
      const ids = {
        identify: a.identify('u1', evil()),
        track: a.track('Signed Up', evil(), { context: JSON.parse('{"__proto__": {"isAdmin": true}, "page": {"__proto__": {"isAdmin": true}}}') }),
        page: a.page('Home', evil()),
      };
      await a.flush();
      const start = Date.now();
      while ((!got.track || !got.page || !got.identify || !copies.identify || !copies.track) && Date.now() - start < 5000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      // For one object: [own __proto__ key, its isAdmin value, what isAdmin reads through the prototype].
      const look = (o) => o && [Object.hasOwn(o, '__proto__'), Object.getPrototypeOf(o) === Object.prototype, o.isAdmin === true];
      return {
        ids,
        received: {
          traits: look(got.identify?.traits),
          properties: look(got.track?.properties),
          context: look(got.track?.context),
          contextPage: look(got.track?.context?.page),
          pageProperties: look(got.page?.properties),
          copiedTraits: look(copies.identify?.traits),
          copiedContext: look(copies.track?.context),
        },
        // As text: the page-to-test transfer would not keep a __proto__ key.
        stored: localStorage.getItem('consent-analytics:traits'),
      };
    });
    const ownKey = [true, true, false];
    for (const [what, seen] of Object.entries(report.received)) {
      assert.deepEqual(seen, ownKey, `${what}: __proto__ stays an own key, isAdmin is not inherited`);
    }
    const stored = JSON.parse(report.stored ?? '{}');
    assert.ok(Object.hasOwn(stored, '__proto__'), 'the stored traits keep the key');
    assert.deepEqual(stored.__proto__, { isAdmin: true });
    const sink = await waitFor(
      async () => {
        const s = await sinkEvents(server.url);
        return Object.values(report.ids).every((id) => s.events.some((r) => r.messageId === id)) ? s : null;
      },
      { message: 'the three events at the sink' },
    );
    const sent = (id) => sink.events.find((r) => r.messageId === id).event;
    for (const [what, o] of [
      ['traits', sent(report.ids.identify).traits],
      ['properties', sent(report.ids.track).properties],
      ['context', sent(report.ids.track).context],
      ['context.page', sent(report.ids.track).context.page],
      ['page properties', sent(report.ids.page).properties],
    ]) {
      assert.ok(Object.hasOwn(o, '__proto__'), `the relay sends ${what} with its __proto__ key`);
      assert.deepEqual(o.__proto__, { isAdmin: true });
    }
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});
