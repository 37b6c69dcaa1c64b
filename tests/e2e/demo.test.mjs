// The demo page (www/index.html) in real Chromium: the consent banner drives
// analytics.consent(), the status table and which vendor scripts are in the DOM, and its choice
// is restored on the next visit; a relay outage
// switched on from the page ends in the dead-letter queue viewer, and its Retry button delivers
// the events to the backend once it is back, each exactly once.

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

const ALL = ['necessary', 'functionality', 'experience', 'measurement', 'marketing'];
const prefs = (...granted) => Object.fromEntries(ALL.map((p) => [p, p === 'necessary' || granted.includes(p)]));

/** Opens the demo page in a fresh context and waits until the client is loaded. */
async function openDemo(server) {
  const p = await openPage(browser, `${server.url}/index.html`);
  await waitFor(() => p.page.evaluate(() => document.getElementById('app-state').dataset.state !== 'loading'), {
    message: 'the demo page to load the client',
  });
  const state = await p.page.evaluate(() => ({
    state: document.getElementById('app-state').dataset.state,
    error: document.getElementById('load-error').textContent,
  }));
  assert.equal(state.state, 'ready', `the demo page did not load the client: ${state.error}`);
  return p;
}

/** The status table as {id: state} (as rendered, not as analytics.status() says). */
const tableStates = (page) =>
  page.$$eval('#status-table tbody tr', (rows) =>
    Object.fromEntries(rows.map((r) => [r.querySelector('[data-col=id]').textContent, r.querySelector('[data-col=state]').textContent])),
  );

const scriptPaths = (page) =>
  page.$$eval('script[src*="/fake/"]', (list) => list.map((s) => new URL(s.src).pathname).sort());

/** Waits until the rendered status table has the given states for the given ids. */
async function waitForStates(page, expected) {
  let last;
  await waitFor(
    async () => {
      last = await tableStates(page);
      return Object.entries(expected).every(([id, state]) => last[id] === state);
    },
    { timeout: 8000, message: `status table ${JSON.stringify(expected)}` },
  ).catch((err) => {
    throw new Error(`${err.message}; table shows ${JSON.stringify(last)}`);
  });
}

test('the consent banner: per-purpose Save, Accept all and Reject all drive consent, status and scripts', async () => {
  await withServer(async (server) => {
    const p = await openDemo(server);
    const { page } = p;
    assert.equal(await page.isVisible('#consent-banner'), true, 'a first visit shows the banner');
    assert.deepEqual(await page.evaluate(() => analytics.consent()), prefs());
    await waitForStates(page, {
      console: 'blocked',
      posthog: 'blocked',
      'meta-pixel': 'blocked',
      ga4: 'blocked',
    });
    const ids = Object.keys(await tableStates(page));
    assert.deepEqual(ids, ['relay', 'console', 'posthog', 'meta-pixel', 'ga4', 'gtm']);

    // Per purpose: measurement only.
    await page.check('#consent-form input[data-purpose=measurement]');
    await page.click('#consent-save');
    assert.equal(await page.isVisible('#consent-banner'), false, 'a choice closes the banner');
    assert.deepEqual(await page.evaluate(() => analytics.consent()), prefs('measurement'));
    await page.click('#btn-track');
    await waitForStates(page, { posthog: 'loaded', ga4: 'loaded', console: 'blocked', 'meta-pixel': 'blocked' });
    const measured = await scriptPaths(page);
    assert.ok(measured.includes('/fake/posthog.js') && measured.includes('/fake/gtag.js'), JSON.stringify(measured));
    assert.ok(!measured.includes('/fake/fbevents.js'), 'no marketing script without marketing consent');

    // The banner reopens with the current choice ticked; Accept all grants everything.
    await page.click('#consent-open');
    assert.equal(await page.isChecked('#consent-form input[data-purpose=measurement]'), true);
    assert.equal(await page.isChecked('#consent-form input[data-purpose=marketing]'), false);
    assert.equal(await page.isDisabled('#consent-form input[data-purpose=necessary]'), true);
    await page.click('#consent-accept');
    assert.deepEqual(await page.evaluate(() => analytics.consent()), prefs(...ALL));
    await page.click('#btn-track');
    await waitForStates(page, { console: 'loaded', 'meta-pixel': 'loaded', posthog: 'loaded', ga4: 'loaded' });
    assert.ok((await scriptPaths(page)).includes('/fake/fbevents.js'));

    // Reject all: only `necessary` is left; revoked destinations show as blocked, their
    // scripts leave the DOM, and the relay (no purpose required) keeps going.
    await page.click('#consent-open');
    await page.click('#consent-reject');
    assert.deepEqual(await page.evaluate(() => analytics.consent()), prefs());
    await waitForStates(page, {
      console: 'blocked',
      posthog: 'blocked',
      'meta-pixel': 'blocked',
      ga4: 'blocked',
      relay: 'loaded',
    });
    const left = await scriptPaths(page);
    assert.ok(!left.includes('/fake/fbevents.js') && !left.includes('/fake/posthog.js'), JSON.stringify(left));
    assert.equal(await page.textContent('#consent-current'), 'necessary');

    // The event log shows the consent changes.
    const logged = await page.$$eval('#event-log li[data-kind=consent]', (l) => l.length);
    assert.equal(logged, 3, 'one consent line per choice');
    assert.deepEqual(p.runtimeErrors(), []);
    assert.deepEqual(p.errors, []);
    await p.close();
  });
});

test("the visitor's choice survives a reload: no banner, the same consent", async () => {
  await withServer(async (server) => {
    const p = await openDemo(server);
    const { page } = p;
    await page.check('#consent-form input[data-purpose=measurement]');
    await page.click('#consent-save');
    await page.reload();
    await waitFor(() => page.evaluate(() => document.getElementById('app-state').dataset.state === 'ready'), {
      message: 'the reloaded page to load the client',
    });
    assert.equal(await page.isVisible('#consent-banner'), false, 'a returning visitor sees no banner');
    assert.deepEqual(await page.evaluate(() => analytics.consent()), prefs('measurement'));
    // A saved value this page did not write is ignored: the banner asks again.
    await page.evaluate(() => localStorage.setItem('consent-analytics-demo:consent', '{"analytics":true}'));
    await page.reload();
    await waitFor(() => page.evaluate(() => document.getElementById('app-state').dataset.state !== 'loading'), {
      message: 'the reloaded page to load the client',
    });
    assert.equal(await page.evaluate(() => document.getElementById('app-state').dataset.state), 'ready');
    assert.equal(await page.isVisible('#consent-banner'), true);
    assert.deepEqual(p.errors, []);
    await p.close();
  });
});

test('a relay outage switched on from the page loses nothing: the events wait in the outbox and reach the backend once', async () => {
  await withServer(async (server) => {
    const p = await openDemo(server);
    const { page } = p;
    await page.click('#consent-reject'); // keep the run to the relay and gtm
    // One event delivered first: the relay is loaded and has nothing pending when the outage starts.
    await page.click('#btn-track');
    await waitFor(async () => (await sinkEvents(server.url)).events.some((e) => e.event.event === 'Order Completed'), {
      message: 'a first event at the backend',
    });

    await page.check('#sink-fail');
    await waitFor(async () => (await sinkEvents(server.url)).mode.mode === 'fail', { message: 'sink in fail mode' });
    await waitFor(async () => (await page.textContent('#sink-mode')) === 'fail 503', { message: 'page shows the mode' });
    const before = (await sinkEvents(server.url)).count;

    // Ten events tracked in one go: the relay sends them as one batch. Its failed attempts
    // open the breaker (threshold 3); the events stay in the outbox, past retry.maxRetries (2),
    // and none is dead-lettered: a 503 is worth waiting for.
    await page.click('#btn-burst');
    await waitFor(async () => (await page.getAttribute('[data-testid=status-relay]', 'data-circuit')) === 'open', {
      timeout: 15000,
      message: 'the relay circuit to open',
    });
    const relay = () => page.evaluate(() => analytics.status().find((s) => s.id === 'relay'));
    const down = await relay();
    assert.equal(down.pending, 10, JSON.stringify(down));
    assert.equal(down.deadLettered, 0);
    assert.ok(down.failed >= 3, JSON.stringify(down));
    assert.equal(down.lastError.kind, 'server');
    assert.equal(down.lastError.status, 503);
    assert.equal(await page.textContent('#dlq-count'), '0');
    const cut = await page.$eval('#event-log', (list) => {
      const box = list.getBoundingClientRect();
      return [...list.children]
        .map((li) => li.getBoundingClientRect())
        .filter((r) => r.top < box.bottom - 1 && r.bottom > box.bottom + 1).length;
    });
    assert.equal(cut, 0, 'the last line the event log shows is whole');
    assert.ok((await page.$$('#event-log li[data-kind=error]')).length >= 3, 'failed attempts are logged');
    const outbox = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.includes(':outbox')).length);
    assert.ok(outbox >= 10, `the events are in the outbox: ${outbox} keys`);
    const during = await sinkEvents(server.url);
    assert.equal(during.count, before, 'the backend accepted nothing while down');
    assert.ok(during.rejected >= 3, `the relay tried: ${during.rejected} rejected requests`);

    // Back up: after the breaker's recovery timeout (5 s in the demo) a trial delivers them.
    await page.uncheck('#sink-fail');
    await waitFor(async () => (await sinkEvents(server.url)).mode.mode === 'ok', { message: 'sink back to ok' });
    await waitFor(async () => (await relay()).pending === 0, { timeout: 30000, message: 'the backlog delivered' });
    // Delivering again clears the relay's last error in the status table.
    await waitFor(
      async () => (await page.$eval('[data-testid=status-relay] [data-col=lastError]', (c) => c.textContent)) === '',
      { message: "the relay's last error to clear once it delivers again" },
    );
    const sink = await sinkEvents(server.url);
    const burst = sink.events.filter((e) => e.event.event === 'Product Viewed');
    assert.equal(burst.length, 10, 'every event of the burst reached the backend');
    assert.deepEqual(sink.duplicates, [], 'each event reached the backend once');
    assert.equal((await relay()).deadLettered, 0);
    assert.equal(await page.textContent('#dlq-count'), '0');
    assert.deepEqual(p.runtimeErrors(), []);
    assert.deepEqual(p.errors, []);
    await p.close();
  });
});
