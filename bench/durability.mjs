// Durability benchmarks of the relay, imported by bench/run.mjs; runnable alone:
//
//   npm run build && node bench/durability.mjs
//
// - outage: 200 events tracked while the backend answers 503 for 3 seconds, with the default
//   settings (retry.maxRetries 3, circuit breaker 5 failures / 30 s): how many reach the backend,
//   how many are dead-lettered, and how long it takes.
// - backlog: 10,000 events tracked in a tab that is offline and then closed; the next page's
//   Analytics.load delivers them: how many arrive, in how many requests, and the longest task
//   the page's main thread ran meanwhile (PerformanceObserver 'longtask': tasks over 50 ms), after
//   the page's first localStorage access (the browser loading the storage area).

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sinkEvents, setSinkMode, resetSink } from '../tests/e2e/harness.mjs';

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Loads the raw package in `page` with one relay to the sink: `window.a`. */
function boot(page, config = {}) {
  return page.evaluate(async (config) => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.a = await m.Analytics.load({
      destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch' } }],
      ...config,
    });
  }, config);
}

/** Waits until the sink holds `n` events or `ms` passed; returns the sink summary. */
async function sinkReaches(url, n, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const s = await sinkEvents(url);
    if (s.count >= n || Date.now() > end) return s;
    // Each look transfers every event received: not so often that it slows the server.
    await pause(1000);
  }
}

/** A 3-second 503 outage with the default settings. */
export async function benchOutage({ browser, url, events = 200 }) {
  await resetSink(url);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${url}/blank.html`);
    await setSinkMode(url, { mode: 'fail', status: 503 });
    await boot(page);
    const started = Date.now();
    await page.evaluate((n) => {
      for (let i = 0; i < n; i++) window.a.track('Outage Event', { i });
    }, events);
    await pause(3000);
    await setSinkMode(url, { mode: 'ok' });
    // The breaker may have opened (recovery timeout 30 s by default).
    const s = await sinkReaches(url, events, 90_000);
    const dead = await page.evaluate(() => window.a.deadLetters().length);
    return { events, delivered: s.count, duplicates: s.duplicates.length, dead, ms: Date.now() - started };
  } finally {
    await setSinkMode(url, { mode: 'ok' });
    await context.close();
  }
}

/** An offline backlog of `events` left by a closed tab, taken over by the next page. */
export async function benchBacklog({ browser, url, events = 10_000 }) {
  await resetSink(url);
  const context = await browser.newContext();
  try {
    const first = await context.newPage();
    await first.goto(`${url}/blank.html`);
    await boot(first);
    await context.setOffline(true);
    await first.evaluate((n) => {
      for (let i = 0; i < n; i++) window.a.track('Backlog Event', { i, sku: `SKU-${i}` });
    }, events);
    const stored = await first.evaluate(
      () => Object.keys(localStorage).filter((k) => k.includes(':outbox:')).length,
    );
    await first.close({ runBeforeUnload: false });
    await context.setOffline(false);

    const page = await context.newPage();
    await page.goto(`${url}/blank.html`);
    await page.evaluate(() => {
      // The page's first localStorage access makes the browser load the whole storage area
      // (about 90 ms for a full 5 MB one in Chromium), whoever makes it: done here, before
      // the observer, so the figure is the takeover's own.
      localStorage.getItem('bench');
      window.longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.longTasks.push(e.duration);
      }).observe({ type: 'longtask' });
    });
    const started = Date.now();
    await boot(page);
    // What fitted in localStorage is what the closed tab left (the rest was lost with it).
    const s = await sinkReaches(url, stored, 120_000);
    const ms = Date.now() - started;
    const tasks = await page.evaluate(() => window.longTasks);
    const at = s.events.map((e) => Date.parse(e.receivedAt));
    const ordered = s.events.every((e, i) => i === 0 || e.event.properties.i >= s.events[i - 1].event.properties.i);
    return {
      events,
      stored,
      delivered: s.count,
      requests: s.requests,
      duplicates: s.duplicates.length,
      ordered,
      ms,
      span: at.length ? Math.max(...at) - Math.min(...at) : 0,
      longestTask: tasks.length ? Math.max(...tasks) : 0,
      longTasks: tasks.length,
    };
  } finally {
    await context.close();
  }
}

const isMain =
  process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const { launchBrowser, withServer } = await import('../tests/e2e/harness.mjs');
  const browser = await launchBrowser();
  try {
    await withServer(async ({ url }) => {
      if (!process.argv.includes('--backlog')) console.log(JSON.stringify({ outage: await benchOutage({ browser, url }) }));
      console.log(JSON.stringify({ backlog: await benchBacklog({ browser, url }) }));
    });
  } finally {
    await browser.close();
  }
}
