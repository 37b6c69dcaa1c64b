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

test('a relay outage switched on from the page ends in the dead-letter queue; Retry delivers each event once', async () => {
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

    // Ten events tracked in one go: the relay sends them as one batch. Its three failed
    // attempts (maxRetries 2) open the breaker (threshold 3), and the events are dead-lettered.
    await page.click('#btn-burst');
    await waitFor(async () => (await page.getAttribute('[data-testid=status-relay]', 'data-circuit')) === 'open', {
      timeout: 15000,
      message: 'the relay circuit to open',
    });
    await waitFor(async () => (await page.textContent('#dlq-count')) === '10', {
      timeout: 15000,
      message: 'ten dead letters in the viewer',
    });
    const entries = await page.$$eval('[data-testid=dlq-entry]', (rows) =>
      rows.map((r) => ({ id: r.dataset.messageId, cells: [...r.cells].map((c) => c.textContent) })),
    );
    assert.equal(entries.length, 10);
    for (const e of entries) {
      assert.equal(e.cells[0], 'relay');
      assert.match(e.cells[1], /^track "Product Viewed"/);
      assert.match(e.cells[2], /^server 503/);
      assert.equal(e.cells[3], '3', 'first attempt + 2 retries');
    }
    const relayRow = await page.$eval('[data-testid=status-relay]', (r) =>
      Object.fromEntries([...r.cells].map((c) => [c.dataset.col, c.textContent])),
    );
    assert.equal(relayRow.deadLettered, '10');
    assert.ok(Number(relayRow.failed) >= 3, JSON.stringify(relayRow));
    assert.match(relayRow.lastError, /^server 503/);
    assert.equal((await page.$$('#event-log li[data-kind=dead-letter]')).length, 10, 'dead letters are logged');
    assert.ok((await page.$$('#event-log li[data-kind=error]')).length >= 3, 'failed attempts are logged');
    const during = await sinkEvents(server.url);
    assert.equal(during.count, before, 'the backend accepted nothing while down');
    assert.ok(during.rejected >= 3, `the relay tried: ${during.rejected} rejected requests`);

    // Back up: Retry in the viewer delivers them.
    await page.uncheck('#sink-fail');
    await waitFor(async () => (await sinkEvents(server.url)).mode.mode === 'ok', { message: 'sink back to ok' });
    await page.click('#dlq-retry');
    await waitFor(async () => (await page.textContent('#dlq-result')).startsWith('{'), { message: 'retry result' });
    assert.deepEqual(JSON.parse(await page.textContent('#dlq-result')), { retried: 10, succeeded: 10, failed: 0 });
    assert.equal(await page.textContent('#dlq-count'), '0');
    assert.equal(await page.evaluate(() => analytics.deadLetters().length), 0);

    const sink = await sinkEvents(server.url);
    const received = sink.events.map((e) => e.messageId);
    for (const e of entries) assert.ok(received.includes(e.id), `the backend got ${e.id}`);
    assert.deepEqual(sink.duplicates, [], 'each event reached the backend once');
    await waitFor(async () => Number(await page.textContent('#sink-count')) === sink.count, {
      message: 'the backend panel to show the new count',
    });
    assert.deepEqual(p.runtimeErrors(), []);
    assert.deepEqual(p.errors, []);
    await p.close();
  });
});
