// The dead-letter queue and circuit breaker in real Chromium with real localStorage: entries
// survive a reload, a corrupt value or a full quota never breaks load or track, and a replay
// after the destination recovers delivers and empties the queue.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, waitFor, setSinkMode, resetSink, sinkEvents } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// Installs the package on the page and a JS destination type 'flaky' that fails while
// window.__down is true, recording what it received in window.__got.
async function setup(page, config) {
  return page.evaluate(async (config) => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.__got = window.__got || [];
    m.Analytics.registerDestination('flaky', () => ({
      track(e) {
        if (window.__down) throw new Error('backend down');
        window.__got.push(e.event);
      },
    }));
    window.analytics = await m.Analytics.load(config);
    return true;
  }, config);
}

const config = {
  retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 20 },
  circuitBreaker: { failureThreshold: 100 },
  destinations: [{ type: 'flaky', id: 'flaky' }],
};

test('dead letters survive a reload and replay once the destination recovers', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = true; });
    await setup(p.page, config);
    await p.page.evaluate(() => {
      window.__dl = [];
      analytics.on('dead-letter', (d) => window.__dl.push(d));
      for (let i = 0; i < 3; i++) analytics.track(`Fail ${i}`);
    });
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 3), {
      message: 'three dead letters',
    });
    const first = await p.page.evaluate(() => ({ dl: analytics.deadLetters(), events: window.__dl.length }));
    assert.equal(first.events, 3, "one 'dead-letter' event per entry");
    const entry = first.dl[0];
    assert.equal(entry.destination, 'flaky');
    assert.equal(entry.event.event, 'Fail 0');
    assert.equal(entry.error.kind, 'unknown');
    assert.equal(entry.attempts, 2, 'maxRetries 1 means two attempts');
    assert.ok(entry.firstFailedAt <= entry.lastFailedAt);

    await p.page.reload();
    await setup(p.page, config);
    const afterReload = await p.page.evaluate(() => analytics.deadLetters().map((d) => d.event.event));
    assert.deepEqual(afterReload, ['Fail 0', 'Fail 1', 'Fail 2'], 'the queue survived the reload');

    const result = await p.page.evaluate(async () => {
      window.__down = false;
      return analytics.retryDeadLetters();
    });
    assert.deepEqual(result, { retried: 3, succeeded: 3, failed: 0 });
    const state = await p.page.evaluate(() => ({ got: window.__got, left: analytics.deadLetters().length }));
    assert.deepEqual(state.got, ['Fail 0', 'Fail 1', 'Fail 2']);
    assert.equal(state.left, 0);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('a failed replay goes back to the queue', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = true; });
    await setup(p.page, config);
    await p.page.evaluate(() => analytics.track('Lost?'));
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 1));
    const r = await p.page.evaluate(() => analytics.retryDeadLetters('flaky'));
    assert.deepEqual(r, { retried: 1, succeeded: 0, failed: 1 });
    assert.equal(await p.page.evaluate(() => analytics.deadLetters().length), 1);
    assert.equal(await p.page.evaluate(() => analytics.clearDeadLetters()), 1);
    assert.equal(await p.page.evaluate(() => analytics.deadLetters().length), 0);
    await p.close();
  });
});

test('a replay that fails again puts back the same dead letter, its attempts added up', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = true; });
    await setup(p.page, config);
    await p.page.evaluate(() => {
      window.__dl = [];
      analytics.on('dead-letter', (d) => window.__dl.push(d));
      analytics.track('Still down');
    });
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 1));
    const look = () => p.page.evaluate(() => ({
      dl: analytics.deadLetters(),
      heard: window.__dl.map((d) => [d.id, d.attempts]),
      deadLettered: analytics.status()[0].deadLettered,
    }));
    const first = await look();
    const entry = first.dl[0];
    assert.equal(entry.attempts, 2, 'maxRetries 1 means two attempts');
    assert.equal(first.deadLettered, 1);
    let last = entry;
    for (const attempts of [3, 4]) {
      const r = await p.page.evaluate(() => analytics.retryDeadLetters());
      assert.deepEqual(r, { retried: 1, succeeded: 0, failed: 1 });
      const now = await look();
      assert.equal(now.dl.length, 1, 'one entry for one event');
      const back = now.dl[0];
      assert.equal(back.id, entry.id, 'the same entry goes back');
      assert.equal(back.attempts, attempts, 'one more attempt per replay');
      assert.equal(back.firstFailedAt, entry.firstFailedAt, 'the first failure is kept');
      assert.ok(back.lastFailedAt >= last.lastFailedAt);
      assert.equal(back.event.messageId, entry.event.messageId);
      assert.equal(back.error.kind, 'unknown');
      assert.equal(now.deadLettered, 1, 'the event is counted dead-lettered once');
      last = back;
    }
    // The listener hears the entry each time it goes back, under its id, updated.
    assert.deepEqual((await look()).heard, [[entry.id, 2], [entry.id, 3], [entry.id, 4]]);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('a corrupt dead-letter value is discarded with a warning, not a crash', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => {
      localStorage.setItem('consent-analytics:dlq', '{"some":"other app"}');
      window.__down = false;
    });
    await setup(p.page, config);
    await p.page.evaluate(() => analytics.track('Works'));
    await waitFor(() => p.page.evaluate(() => window.__got.includes('Works')));
    assert.deepEqual(await p.page.evaluate(() => analytics.deadLetters()), []);
    const warned = p.messages.filter((m) => m.type === 'warning' && m.text.includes('[consent-analytics]'));
    assert.equal(warned.length, 1, JSON.stringify(p.messages));
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('a full localStorage does not break load, track or dead-lettering', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => {
      // Fill the quota with one big value, as another script on the page might.
      let s = 'x'.repeat(1 << 20);
      for (let i = 0; i < 20; i++) {
        try { localStorage.setItem(`filler-${i}`, s); } catch { break; }
      }
      s = 'x'.repeat(1024);
      for (let i = 0; i < 5000; i++) {
        try { localStorage.setItem(`small-${i}`, s); } catch { break; }
      }
      window.__down = true;
    });
    await setup(p.page, config);
    const id = await p.page.evaluate(() => analytics.track('Quota'));
    assert.match(id, /^[0-9a-f-]{36}$/);
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 1), {
      message: 'dead letter kept in memory',
    });
    assert.deepEqual(p.runtimeErrors(), []);
    assert.deepEqual(p.errors, []);
    await p.close();
  });
});

test('an open circuit makes events wait, and the half-open trial closes it', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = true; });
    await setup(p.page, {
      retry: { maxRetries: 10, baseDelayMs: 5, maxDelayMs: 5, jitter: false },
      circuitBreaker: { failureThreshold: 2, recoveryTimeoutMs: 300, halfOpenSuccesses: 1 },
      destinations: [{ type: 'flaky', id: 'flaky' }],
    });
    await p.page.evaluate(() => analytics.track('Waits'));
    await waitFor(() => p.page.evaluate(() => analytics.status()[0].circuit === 'open'), {
      message: 'circuit opens',
    });
    const st = await p.page.evaluate(() => analytics.status()[0]);
    assert.equal(st.failed, 2);
    assert.equal(st.deadLettered, 0, 'waiting, not dropped');
    await p.page.evaluate(() => { window.__down = false; });
    await waitFor(() => p.page.evaluate(() => window.__got.includes('Waits')), {
      message: 'delivered after recovery',
    });
    assert.equal(await p.page.evaluate(() => analytics.status()[0].circuit), 'closed');
    await p.close();
  });
});

test('while the browser is offline nothing is attempted and nothing counts as a failure', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = false; window.__attempts = 0; });
    await setup(p.page, config);
    await p.page.evaluate(() => analytics.track('Warm up'));
    await waitFor(() => p.page.evaluate(() => window.__got.includes('Warm up')));
    await p.context.setOffline(true);
    await p.page.evaluate(() => {
      for (let i = 0; i < 3; i++) analytics.track(`Offline ${i}`);
    });
    await new Promise((r) => setTimeout(r, 400));
    const during = await p.page.evaluate(() => ({ got: window.__got.length, st: analytics.status()[0] }));
    assert.equal(during.got, 1, 'nothing delivered while offline');
    assert.equal(during.st.failed, 0, 'nothing counted as a failure');
    assert.equal(during.st.deadLettered, 0);
    await p.context.setOffline(false);
    await waitFor(() => p.page.evaluate(() => window.__got.length === 4), { message: 'delivered once back online' });
    assert.deepEqual(await p.page.evaluate(() => window.__got.slice(1)), ['Offline 0', 'Offline 1', 'Offline 2']);
    await p.close();
  });
});

test('two tabs share one dead-letter queue: neither loses nor brings back the other\'s entries', async () => {
  await withServer(async (server) => {
    const context = await browser.newContext();
    const [a, b] = [await context.newPage(), await context.newPage()];
    for (const p of [a, b]) {
      await p.goto(`${server.url}/blank.html`);
      await p.evaluate(() => { window.__down = true; });
      await setup(p, config);
    }
    const stored = (p) => p.evaluate(() => localStorage.getItem('consent-analytics:dlq') ?? '');
    const names = (p) => p.evaluate(() => analytics.deadLetters().map((d) => d.event.event).sort());
    // Each tab dead-letters one event, B after it has seen A's entry in localStorage.
    await a.evaluate(() => analytics.track('From A'));
    await waitFor(async () => (await stored(b)).includes('From A'), { message: "A's dead letter stored" });
    await b.evaluate(() => analytics.track('From B'));
    await waitFor(async () => (await stored(a)).includes('From B'), { message: "B's dead letter stored" });
    assert.deepEqual(await names(a), ['From A', 'From B']);
    assert.deepEqual(await names(b), ['From A', 'From B']);

    // A replays both; B then dead-letters another event without bringing them back.
    const r = await a.evaluate(async () => {
      window.__down = false;
      return analytics.retryDeadLetters();
    });
    assert.deepEqual(r, { retried: 2, succeeded: 2, failed: 0 });
    await waitFor(async () => !(await stored(b)).includes('From A'), { message: 'the replay stored' });
    await b.evaluate(() => analytics.track('Later from B'));
    await waitFor(async () => (await stored(a)).includes('Later from B'), { message: "B's second dead letter" });
    assert.deepEqual(await names(b), ['Later from B']);
    assert.deepEqual(await names(a), ['Later from B']);
    assert.deepEqual(await a.evaluate(() => window.__got), ['From A', 'From B']);
    await context.close();
  });
});

/** Replaces the event text of the stored dead letters whose event is named in `edits` (name ->
 * new text); returns the ids of the edited entries. */
async function editStoredEvents(page, edits) {
  return page.evaluate((edits) => {
    const key = 'consent-analytics:dlq';
    const stored = JSON.parse(localStorage.getItem(key));
    const ids = [];
    for (const entry of stored.entries) {
      const name = JSON.parse(entry.event).event;
      if (name in edits) {
        ids.push(entry.id);
        entry.event = edits[name];
      }
    }
    localStorage.setItem(key, JSON.stringify(stored));
    return ids;
  }, edits);
}

const dlqWarnings = (p) =>
  p.messages.filter((m) => m.type === 'warning' && m.text.includes('consent-analytics:dlq')).map((m) => m.text);

test('a dead letter whose event is not a JSON object is discarded with a warning, never listed or replayed', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await p.page.evaluate(() => { window.__down = true; });
    await setup(p.page, config);
    await p.page.evaluate(() => { for (let i = 0; i < 4; i++) analytics.track(`Fail ${i}`); });
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 4), { message: 'four dead letters' });
    const bad = await editStoredEvents(p.page, { 'Fail 1': 'not json', 'Fail 2': '["Fail 2"]' });
    assert.equal(bad.length, 2);
    await p.page.reload();
    await setup(p.page, config);
    const listed = await p.page.evaluate(() => analytics.deadLetters().map((d) => d.event.event));
    assert.deepEqual(listed, ['Fail 0', 'Fail 3'], 'only the good entries are listed');
    const warned = dlqWarnings(p);
    assert.equal(warned.length, 2, JSON.stringify(p.messages));
    assert.ok(warned[0].includes(bad[0]) && warned[1].includes(bad[1]), `warnings name the entries: ${warned}`);
    const stored = await p.page.evaluate(() => localStorage.getItem('consent-analytics:dlq'));
    assert.ok(!stored.includes(bad[0]) && !stored.includes(bad[1]), 'removed from the stored queue');
    // Discarded for good: listing again is quiet, and the replay delivers the good entries only.
    const r = await p.page.evaluate(async () => {
      analytics.deadLetters();
      window.__down = false;
      return analytics.retryDeadLetters();
    });
    assert.deepEqual(r, { retried: 2, succeeded: 2, failed: 0 });
    assert.deepEqual(await p.page.evaluate(() => window.__got), ['Fail 0', 'Fail 3']);
    assert.equal(dlqWarnings(p).length, 2);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('a relay dead letter whose event is not JSON is discarded at replay, and the good ones in its batch are delivered', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    await setSinkMode(server.url, { mode: 'fail', status: 400 }); // refused: dead-lettered at once
    const cfg = {
      retry: { maxRetries: 0 },
      circuitBreaker: { failureThreshold: 100 },
      destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch', flushIntervalMs: 100000 } }],
    };
    const boot = (cfg) => p.page.evaluate(async (cfg) => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.analytics = await m.Analytics.load(cfg);
    }, cfg);
    await boot(cfg);
    await p.page.evaluate(() => { analytics.track('Good'); analytics.track('Bad'); return analytics.flush(); });
    await waitFor(() => p.page.evaluate(() => analytics.deadLetters().length === 2), { message: 'two dead letters' });
    const [bad] = await editStoredEvents(p.page, { Bad: 'not json' });
    await setSinkMode(server.url, { mode: 'ok' });
    await resetSink(server.url);
    await p.page.reload();
    await boot(cfg);
    const r = await p.page.evaluate(() => analytics.retryDeadLetters('relay'));
    assert.deepEqual(r, { retried: 1, succeeded: 1, failed: 0 });
    const s = await sinkEvents(server.url);
    assert.deepEqual(s.events.map((e) => e.event.event), ['Good']);
    assert.equal(s.rejected, 0, 'no batch was refused');
    assert.deepEqual(await p.page.evaluate(() => analytics.deadLetters()), []);
    const warned = dlqWarnings(p);
    assert.equal(warned.length, 1, JSON.stringify(p.messages));
    assert.ok(warned[0].includes(bad), warned[0]);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});

test('dead letters stored by the previous release are listed and replayed, and the queue is rewritten in the current format', async () => {
  await withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    const now = Date.now();
    // The previous release's tab-separated `cadlq1` text: one entry, message escaped.
    const event = JSON.stringify({ type: 'track', event: 'Old One', messageId: 'm-old', properties: {} });
    const legacy = `cadlq1 1\nold-1\tflaky\tunknown\t\t2\t${now - 5000}\t${now - 1000}\tbackend\\tdown\t${event}\n`;
    await p.page.evaluate((v) => localStorage.setItem('consent-analytics:dlq', v), legacy);
    await p.page.evaluate(() => { window.__down = false; });
    await setup(p.page, config);
    const listed = await p.page.evaluate(() => analytics.deadLetters());
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0], {
      id: 'old-1',
      destination: 'flaky',
      event: JSON.parse(event),
      error: { kind: 'unknown', message: 'backend\tdown' },
      attempts: 2,
      firstFailedAt: now - 5000,
      lastFailedAt: now - 1000,
    });
    const r = await p.page.evaluate(() => analytics.retryDeadLetters());
    assert.deepEqual(r, { retried: 1, succeeded: 1, failed: 0 });
    assert.deepEqual(await p.page.evaluate(() => window.__got), ['Old One']);
    const stored = await p.page.evaluate(() => localStorage.getItem('consent-analytics:dlq'));
    assert.deepEqual(JSON.parse(stored), { v: 2, entries: [] });
    assert.deepEqual(dlqWarnings(p), []);
    assert.deepEqual(p.runtimeErrors(), []);
    await p.close();
  });
});
