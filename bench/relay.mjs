// Relay throughput benchmark: 5000 track() calls to a relay with default settings pointing at
// the local sink, until the sink holds all of them. Imported by bench/run.mjs; runnable alone:
//
//   npm run build && node bench/relay.mjs
//
// For comparison, Segment's analytics.js sends one request per event here (5000 requests,
// 23-35 s); the relay sends ceil(5000 / batchSize) batches.

import { pathToFileURL } from 'node:url';
import path from 'node:path';

const EVENTS = 5000;

async function sink(url) {
  const res = await fetch(`${url}/sink/events`);
  if (!res.ok) throw new Error(`GET /sink/events: ${res.status}`);
  return res.json();
}

/**
 * Runs the benchmark in a new page of `browser` against the dev server at `url` (its sink must
 * be empty). Returns { events, requests, ms, bytes }: requests and bytes as counted by the sink,
 * ms from the first track() until the sink has every event.
 */
export async function benchRelay({ browser, url }) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${url}/blank.html`);
    await page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.a = await m.Analytics.load({
        destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch' } }],
        // One synchronous burst of 5000: every event is still waiting for the relay's first
        // load, which the default loading.bufferLimit (1000) would cut short.
        loading: { bufferLimit: 5000 },
      });
      window.warnings = [];
      const warn = console.warn;
      console.warn = (...args) => {
        window.warnings.push(args.join(' '));
        warn(...args);
      };
    });
    const started = Date.now();
    await page.evaluate((n) => {
      for (let i = 0; i < n; i++) {
        window.a.track('Bench Event', { i, sku: 'SKU-' + i, price: 9.99, currency: 'EUR' });
      }
    }, EVENTS);
    let s;
    for (;;) {
      await page.evaluate(() => window.a.flush());
      s = await sink(url);
      if (s.count >= EVENTS) break;
      if (Date.now() - started > 120_000) {
        throw new Error(`relay bench: only ${s.count} of ${EVENTS} events after 120 s`);
      }
    }
    const ms = Date.now() - started;
    const warnings = await page.evaluate(() => window.warnings);
    if (warnings.length) console.error('relay bench warnings:', warnings);
    if (s.duplicates.length) throw new Error(`relay bench: ${s.duplicates.length} duplicates`);
    return { events: s.count, requests: s.requests, ms, bytes: s.bytes };
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
    const result = await withServer((server) => benchRelay({ browser, url: server.url }));
    console.log(JSON.stringify({ relay: result }));
  } finally {
    await browser.close();
  }
}
