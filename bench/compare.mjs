// Side-by-side benchmark against Segment's analytics.js (@segment/analytics-next, the npm
// package, built by webpack in production mode as a site would ship it), in the system Chromium
// against the local dev server. Segment runs twice: with its defaults (identity in cookies and
// localStorage) and with `storage: { stores: ['localStorage', 'memory'] }`, which keeps identity
// where ours does. All run the same workloads in rotating rounds; figures are medians over the
// rounds, and the ratios are ours / Segment's. Reported, never asserted. Needs `npm run build`.
//
//   npm run bench:compare           (ROUNDS=5 EVENTS=2000 SINK_EVENTS=1000 change the defaults)
//
// What is compared:
//   - bytes a visitor downloads (gzip -9): ours, the .wasm and the JS glue; Segment's, every
//     bundle file the page fetched (its entry and the chunks it loads for this config)
//   - load: from fetching the package to ready with three no-op destinations
//   - track(): the synchronous cost of one call with three no-op destinations, and the time until
//     all three have every event
//   - server delivery: a burst of SINK_EVENTS events to the local sink, Segment's batching
//     delivery (its batch endpoint, `size: 20`) against our relay (batchSize 20)
//   - first event: on a fresh page, the time until `track()` can be called (ours: the package
//     entry imported and `Analytics.load` returned; Segment: its bundle loaded and
//     `AnalyticsBrowser.load` returned; both buffer calls until loaded), and the time until an
//     event tracked at that moment reaches the sink (ours: the relay with batchSize 1; Segment:
//     its batch endpoint with size 1, so neither waits for a batch to fill)

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { buildWithWebpack } from '../tests/e2e/webpack.mjs';
import { launchBrowser, withServer, openPage, requestLog, clearLog, resetSink, sinkEvents } from '../tests/e2e/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const EVENTS = Number(process.env.EVENTS ?? 2000);
const SINK_EVENTS = Number(process.env.SINK_EVENTS ?? 1000);
const SEGMENT_VERSION = JSON.parse(
  await fs.readFile(path.join(ROOT, 'node_modules/@segment/analytics-next/package.json'), 'utf8'),
).version;
const gz = async (file) => zlib.gzipSync(await fs.readFile(file), { level: 9 }).length;

// --- Segment's bundle ---------------------------------------------------------------------------

const SEGMENT_ENTRY = `import { AnalyticsBrowser } from '@segment/analytics-next';
window.AnalyticsBrowser = AnalyticsBrowser;
`;

/** Builds SEGMENT_ENTRY with webpack (production) into `<dir>/dist` (served at /bundle/). */
async function buildSegment(dir) {
  await fs.writeFile(path.join(dir, 'entry.mjs'), SEGMENT_ENTRY);
  const out = path.join(dir, 'dist');
  await buildWithWebpack({
    context: dir,
    entry: './entry.mjs',
    out,
    resolve: { modules: [path.join(ROOT, 'node_modules')] },
  });
}

// --- in-page code: one driver per library, the same workloads -----------------------------------

/** Loads the library with three no-op destinations (plus, with `sink`, its server delivery). */
async function pageLoad({ lib, sink, events }) {
  const counts = [0, 0, 0];
  const b = (window.__bench = { counts, waiters: [], target: 0 });
  const hit = (i) => {
    counts[i] += 1;
    if (counts[i] >= b.target) for (const w of b.waiters) w();
  };
  const t0 = performance.now();
  if (lib === 'ours') {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    const destinations = sink
      ? [{ type: 'relay', settings: { endpoint: '/v1/batch', batchSize: 20 } }]
      : [0, 1, 2].map((i) => {
          m.Analytics.registerDestination(`noop-${i}`, () => ({ track: () => hit(i) }));
          return { type: `noop-${i}`, requiredConsent: [] };
        });
    const a = await m.Analytics.load({
      loading: { strategy: 'eager', bufferLimit: events * 2 },
      destinations,
    });
    while (!a.status().every((s) => s.state === 'loaded')) await new Promise((r) => setTimeout(r, 1));
    b.track = (name, props) => a.track(name, props);
    b.flush = () => a.flush();
  } else {
    await new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/bundle/main.js';
      s.onload = resolve;
      s.onerror = () => reject(new Error('/bundle/main.js did not load'));
      document.head.append(s);
    });
    const plugins = sink
      ? []
      : [0, 1, 2].map((i) => ({
          name: `noop-${i}`,
          type: 'destination',
          version: '1.0.0',
          isLoaded: () => true,
          load: () => Promise.resolve(),
          track: (ctx) => (hit(i), ctx),
        }));
    const integrations = sink
      ? {
          'Segment.io': {
            apiKey: 'bench',
            apiHost: `${location.host}/v1`,
            protocol: 'http',
            deliveryStrategy: { strategy: 'batching', config: { size: 20, timeout: 1000 } },
          },
        }
      : {};
    const options = sink ? {} : { integrations: { 'Segment.io': false } };
    if (lib === 'segment-ls') options.storage = { stores: ['localStorage', 'memory'] };
    const [a] = await window.AnalyticsBrowser.load(
      { writeKey: 'bench', cdnSettings: { integrations, metrics: { sampleRate: 0 } }, plugins },
      options,
    );
    b.track = (name, props) => a.track(name, props);
    b.flush = () => {};
  }
  return performance.now() - t0;
}

/**
 * On a fresh page: loads the library through its entry that buffers calls, tracks one event as
 * soon as `track()` can be called; returns that time (ms) and the epoch ms the page started at.
 */
async function pageFirst({ lib }) {
  const startedAt = Date.now();
  const t0 = performance.now();
  let analytics;
  if (lib === 'ours') {
    const { Analytics } = await import('/pkg/index.js');
    analytics = Analytics.load({ destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch', batchSize: 1 } }] });
  } else {
    await new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/bundle/main.js';
      s.onload = resolve;
      s.onerror = () => reject(new Error('/bundle/main.js did not load'));
      document.head.append(s);
    });
    const options = lib === 'segment-ls' ? { storage: { stores: ['localStorage', 'memory'] } } : {};
    const integrations = {
      'Segment.io': {
        apiKey: 'bench',
        apiHost: `${location.host}/v1`,
        protocol: 'http',
        deliveryStrategy: { strategy: 'batching', config: { size: 1, timeout: 1000 } },
      },
    };
    analytics = window.AnalyticsBrowser.load({ writeKey: 'bench', cdnSettings: { integrations, metrics: { sampleRate: 0 } } }, options);
  }
  const callable = performance.now() - t0;
  analytics.track('First Event', { n: 1 });
  return { callable, startedAt };
}

/** Tracks `n` events timing batches of `batch` calls (µs per call); waits for all 3 destinations. */
async function pageTrack({ n, batch }) {
  const b = window.__bench;
  b.counts.fill(0);
  b.target = n;
  const done = new Promise((resolve) => b.waiters.push(() => b.counts.every((c) => c >= n) && resolve()));
  const samples = [];
  const props = { revenue: 42, currency: 'EUR', sku: 'SKU-1' };
  const start = performance.now();
  for (let i = 0; i < n; ) {
    const end = Math.min(i + batch, n);
    const t = performance.now();
    for (; i < end; i++) b.track('Order Completed', props);
    samples.push(((performance.now() - t) * 1000) / batch);
  }
  await done;
  const delivered = performance.now() - start;
  b.waiters.length = 0;
  return { samples, delivered };
}

/** Tracks `n` events for server delivery. */
function pageBurst(n) {
  for (let i = 0; i < n; i++) {
    window.__bench.track('Bench Event', { i, sku: 'SKU-' + i, price: 9.99, currency: 'EUR' });
  }
}

// --- measurements -------------------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** One round for `lib`: load and track with three no-op destinations; returns its figures. */
async function roundLocal(browser, server, lib) {
  await clearLog(server.url);
  const p = await openPage(browser, `${server.url}/blank.html`);
  const load = await p.page.evaluate(pageLoad, { lib, sink: false, events: EVENTS });
  await p.page.evaluate(pageTrack, { n: 500, batch: 50 }); // warm up
  const r = await p.page.evaluate(pageTrack, { n: EVENTS, batch: 50 });
  const fetched = (await requestLog(server.url)).map((e) => e.path);
  const errors = [...p.errors, ...p.runtimeErrors()];
  await p.close();
  if (errors.length) throw new Error(`${lib}: the page reported errors:\n${errors.join('\n')}`);
  return { load, perCall: median(r.samples), delivered: r.delivered, fetched };
}

/** One round for `lib`: SINK_EVENTS events to the local sink; returns ms and requests. */
async function roundSink(browser, server, lib) {
  await resetSink(server.url);
  const p = await openPage(browser, `${server.url}/blank.html`);
  await p.page.evaluate(pageLoad, { lib, sink: true, events: SINK_EVENTS });
  const started = Date.now();
  await p.page.evaluate(pageBurst, SINK_EVENTS);
  let s;
  for (;;) {
    await p.page.evaluate(() => window.__bench.flush());
    s = await sinkEvents(server.url);
    if (s.count >= SINK_EVENTS) break;
    if (Date.now() - started > 180_000) throw new Error(`${lib}: ${s.count} of ${SINK_EVENTS} events after 180 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = Date.now() - started;
  await p.close();
  return { ms, requests: s.requests, duplicates: s.duplicates.length };
}

/** One round for `lib` on a fresh page: until `track()` can be called, until its event is at the sink. */
async function roundFirst(browser, server, lib) {
  await resetSink(server.url);
  const p = await openPage(browser, `${server.url}/blank.html`);
  const { callable, startedAt } = await p.page.evaluate(pageFirst, { lib });
  let arrived;
  for (;;) {
    const s = await sinkEvents(server.url);
    if (s.events.some((r) => r.event.event === 'First Event')) {
      arrived = Date.now() - startedAt;
      break;
    }
    if (Date.now() - startedAt > 60_000) throw new Error(`${lib}: the first event did not reach the sink in 60 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const errors = [...p.errors, ...p.runtimeErrors()];
  await p.close();
  if (errors.length) throw new Error(`${lib}: the page reported errors:\n${errors.join('\n')}`);
  return { callable, arrived };
}

/** Gzip -9 bytes of what a visitor downloads: our package, or the Segment files the page fetched. */
async function bytes(lib, fetched, segmentDir) {
  if (lib === 'ours') {
    const files = ['consent_analytics_bg.wasm', 'consent_analytics.js', 'index.js', 'locate.js'].map((f) =>
      path.join(ROOT, 'pkg', f),
    );
    const sizes = await Promise.all(files.map(gz));
    return { total: sizes.reduce((a, b) => a + b, 0), files: files.length };
  }
  const names = [...new Set(fetched.filter((f) => f.startsWith('/bundle/') && f.endsWith('.js')))];
  const sizes = await Promise.all(names.map((f) => gz(path.join(segmentDir, f.slice('/bundle/'.length)))));
  return { total: sizes.reduce((a, b) => a + b, 0), files: names.length };
}

const rotate = (xs, r) => xs.map((_, i) => xs[(i + r) % xs.length]);

// --- main ---------------------------------------------------------------------------------------

await fs.access(path.join(ROOT, 'pkg', 'consent_analytics_bg.wasm')).catch(() => {
  console.error('bench: pkg/ not found; run `npm run build` first (the bench builds only Segment)');
  process.exit(1);
});
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-compare-'));
const browser = await launchBrowser();
const libs = ['ours', 'segment', 'segment-ls'];
const got = Object.fromEntries(libs.map((l) => [l, []]));
const sink = Object.fromEntries(libs.map((l) => [l, []]));
const first = Object.fromEntries(libs.map((l) => [l, []]));
const size = {};
try {
  await buildSegment(tmp);
  const segmentDir = path.join(tmp, 'dist');
  await withServer(
    async (server) => {
      for (let r = 0; r < ROUNDS; r++) {
        // Rotate which runs first, so none always meets a warmer machine.
        for (const lib of rotate(libs, r)) {
          const res = await roundLocal(browser, server, lib);
          got[lib].push(res);
          size[lib] ??= await bytes(lib, res.fetched, segmentDir);
        }
      }
      for (let r = 0; r < Math.min(ROUNDS, 3); r++) {
        for (const lib of rotate(libs, r)) sink[lib].push(await roundSink(browser, server, lib));
      }
      for (let r = 0; r < ROUNDS; r++) {
        for (const lib of rotate(libs, r)) first[lib].push(await roundFirst(browser, server, lib));
      }
    },
    { bundleDir: path.join(tmp, 'dist') },
  );
} finally {
  await browser.close();
  await fs.rm(tmp, { recursive: true, force: true });
}

const pick = (lib, key, from = got) => median(from[lib].map((x) => x[key]));
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const ms = (n) => `${n.toFixed(1)} ms`;
const us = (n) => `${n.toFixed(2)} µs`;
/** A row: label, formatter, value per lib, notes. */
const row = (label, fmt, value, notes) => {
  const v = Object.fromEntries(libs.map((l) => [l, value(l)]));
  const ratio = (l) => `${(v.ours / v[l]).toFixed(2)}×`;
  return [label, fmt(v.ours), fmt(v.segment), fmt(v['segment-ls']), ratio('segment'), ratio('segment-ls'), notes];
};
const rows = [
  row('download (gzip -9)', kb, (l) => size[l].total,
    `ours: wasm + glue + entry; Segment: the ${size.segment.files} bundle file(s) its page fetched`),
  row('load to ready, 3 destinations', ms, (l) => pick(l, 'load'), 'fetch, compile and load; median of rounds'),
  row('track() per call, 3 destinations', us, (l) => pick(l, 'perCall'), `median of per-call medians, ${EVENTS} calls a round`),
  row(`${EVENTS} events at all 3 destinations`, ms, (l) => pick(l, 'delivered'), 'from the first call'),
  row(`${SINK_EVENTS} events at the local sink`, ms, (l) => pick(l, 'ms', sink),
    `requests ${libs.map((l) => pick(l, 'requests', sink)).join(' / ')}; duplicates ${libs.map((l) => pick(l, 'duplicates', sink)).join(' / ')}`),
  row('time until track() can be called', ms, (l) => pick(l, 'callable', first), 'fresh page: import/script load + load() returning'),
  row('time until the first event reaches the backend', ms, (l) => pick(l, 'arrived', first),
    'fresh page, tracked as soon as callable; batch size 1 on both'),
];
const head = ['metric', 'ours', 'Segment', 'Segment (ls)', 'ours/Segment', 'ours/Segment (ls)', 'notes'];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
const line = (r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ');
console.log(`${ROUNDS} rounds. Segment: analytics-next ${SEGMENT_VERSION} with its defaults; (ls): identity in localStorage only, as ours. Below 1×: ours is smaller or faster.\n`);
console.log(line(head));
console.log(line(w.map((n) => '-'.repeat(n))));
for (const r of rows) console.log(line(r));
