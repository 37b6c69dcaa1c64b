// Benchmark (npm run bench): package size, time to ready, cost of track(), delivery time,
// relay throughput and memory, measured in the system Chromium against the local dev server.
// Figures are reported, never asserted. Needs `npm run build` first (it builds nothing).
//
//   node bench/run.mjs            (EVENTS=5000 INIT_RUNS=7 to change the defaults)

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchBrowser, withServer, openPage } from '../tests/e2e/harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(ROOT, 'pkg');
const NAME = 'consent_analytics';
const EVENTS = Number(process.env.EVENTS ?? 5000);
const INIT_RUNS = Number(process.env.INIT_RUNS ?? 7);
const SETTLE_MS = 11_000; // loading.timeoutMs (default 10 s) + 1 s

// --- package size (the same files and gzip level as scripts/size.mjs) ----------------------------

function packageSize() {
  const wasm = path.join(PKG, `${NAME}_bg.wasm`);
  const js = path.join(PKG, `${NAME}.js`);
  for (const f of [wasm, js]) {
    if (!fs.existsSync(f)) {
      console.error(`bench: ${path.relative(ROOT, f)} not found; run \`npm run build\` first (bench builds nothing)`);
      process.exit(1);
    }
  }
  const snippets = path.join(PKG, 'snippets');
  const glue = [js];
  if (fs.existsSync(snippets)) {
    for (const e of fs.readdirSync(snippets, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) glue.push(path.join(e.parentPath ?? e.path, e.name));
    }
  }
  const gz = (f) => zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length;
  return { wasm: gz(wasm), glue: glue.reduce((n, f) => n + gz(f), 0), glueFiles: glue.length };
}

// --- in-page code ------------------------------------------------------------------------------

/** Loads the package with three no-op JS destinations; returns ms for init() + load(). */
async function pageSetup(events) {
  const m = await import('/pkg/consent_analytics.js');
  const t0 = performance.now();
  const exports = await m.default();
  // The release build shortens export names: find the memory by its type.
  const wasm = { memory: Object.values(exports).find((v) => v instanceof WebAssembly.Memory) };
  const counts = [0, 0, 0];
  window.__bench = { m, wasm, counts, waiters: [] };
  for (let i = 0; i < 3; i++) {
    m.Analytics.registerDestination(`noop-${i}`, () => ({
      track() {
        counts[i] += 1;
        if (counts[i] >= window.__bench.target) for (const w of window.__bench.waiters) w();
      },
    }));
  }
  window.analytics = await m.Analytics.load({
    loading: { strategy: 'eager', bufferLimit: events * 2 },
    destinations: [0, 1, 2].map((i) => ({ type: `noop-${i}`, requiredConsent: [] })),
  });
  return performance.now() - t0;
}

/** Waits until the three destinations are loaded. */
async function pageReady() {
  for (;;) {
    if (analytics.status().every((s) => s.state === 'loaded')) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The smallest non-zero step of performance.now(), in ms. */
function pageResolution() {
  let min = Infinity;
  for (let i = 0; i < 50; i++) {
    const a = performance.now();
    let b = a;
    while (b === a) b = performance.now();
    min = Math.min(min, b - a);
  }
  return min;
}

/** Tracks `n` events, timing batches of `batch` calls; resolves when all three got them. */
async function pageTrack({ n, batch }) {
  const b = window.__bench;
  b.counts.fill(0);
  b.target = n;
  const done = new Promise((resolve) => b.waiters.push(() => b.counts.every((c) => c >= n) && resolve()));
  const samples = new Float64Array(Math.ceil(n / batch));
  const props = { revenue: 42, currency: 'EUR', sku: 'SKU-1' };
  gc();
  const heapBefore = performance.memory.usedJSHeapSize;
  const start = performance.now();
  for (let i = 0, s = 0; i < n; s++) {
    const end = Math.min(i + batch, n);
    const t = performance.now();
    for (; i < end; i++) analytics.track('Order Completed', props);
    samples[s] = ((performance.now() - t) * 1000) / batch; // µs per call
  }
  const tracked = performance.now() - start;
  // Before anything was delivered (the client delivers from a microtask after the loop): the events
  // waiting to be delivered and the garbage the calls left, no collection forced.
  const loopHeap = performance.memory.usedJSHeapSize - heapBefore;
  // The same with the garbage collected: what the waiting events hold.
  gc();
  const loopRetained = performance.memory.usedJSHeapSize - heapBefore;
  await done;
  const delivered = performance.now() - start;
  b.waiters.length = 0;
  return { samples: [...samples], tracked, delivered, loopHeap, loopRetained, wasmBytes: b.wasm.memory.buffer.byteLength };
}

// --- statistics --------------------------------------------------------------------------------

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const median = (xs) => quantile(xs, 0.5);
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

// --- measurements ------------------------------------------------------------------------------

async function measureInit(browser, url) {
  const times = [];
  for (let i = 0; i < INIT_RUNS; i++) {
    const p = await openPage(browser, `${url}/blank.html`);
    times.push(await p.page.evaluate(pageSetup, EVENTS));
    await p.close();
  }
  return times;
}

async function measureTrack(browser, url) {
  const p = await openPage(browser, `${url}/blank.html`);
  const { page } = p;
  await page.evaluate(pageSetup, EVENTS);
  await page.evaluate(pageReady);
  const resolution = await page.evaluate(pageResolution);
  // Warm up, and size the batches so one batch lasts about 20 clock steps.
  const warm = await page.evaluate(pageTrack, { n: 500, batch: 100 });
  const perCall = Math.max(median(warm.samples), 0.1) / 1000; // ms
  const batch = Math.min(250, Math.max(10, Math.ceil((20 * resolution) / perCall)));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
  };
  const wasmBefore = await page.evaluate(() => window.__bench.wasm.memory.buffer.byteLength);
  const heapBefore = await heap();
  const r = await page.evaluate(pageTrack, { n: EVENTS, batch });
  const heapAfter = await heap();
  // Each delivery races a loading.timeoutMs (10 s) timer that stays pending after the delivery
  // succeeded; measure again once those have fired.
  await new Promise((res) => setTimeout(res, SETTLE_MS));
  const heapSettled = await heap();
  const perBatch = 1000 / batch;
  const first = r.samples.slice(0, Math.max(1, Math.floor(perBatch)));
  const last = r.samples.slice(-Math.max(1, Math.floor(perBatch)));
  const runtime = p.runtimeErrors();
  await p.close();
  return {
    ...r,
    resolution,
    batch,
    heapGrowth: heapAfter - heapBefore,
    heapSettled: heapSettled - heapBefore,
    wasmGrowth: r.wasmBytes - wasmBefore,
    firstMedian: median(first),
    lastMedian: median(last),
    runtime,
  };
}

async function measureRelay(browser, url) {
  const file = path.join(ROOT, 'bench', 'relay.mjs');
  if (!fs.existsSync(file)) return null;
  try {
    const { benchRelay } = await import(pathToFileURL(file).href);
    return await benchRelay({ browser, url });
  } catch (err) {
    return { error: err.message };
  }
}

async function measureDurability(browser, url) {
  const { benchOutage, benchBacklog } = await import(pathToFileURL(path.join(ROOT, 'bench', 'durability.mjs')).href);
  const run = async (f) => {
    try {
      return await f({ browser, url });
    } catch (err) {
      return { error: err.message };
    }
  };
  return { outage: await run(benchOutage), backlog: await run(benchBacklog) };
}

// --- main --------------------------------------------------------------------------------------

const size = packageSize();
// Precise memory info and gc(): performance.memory in the page, read right after the track()
// loop, as it is and once collected.
const browser = await launchBrowser({ args: ['--enable-precise-memory-info', '--js-flags=--expose-gc'] });
let init, track, relay, durability;
try {
  await withServer(async ({ url }) => {
    init = await measureInit(browser, url);
    track = await measureTrack(browser, url);
    relay = await measureRelay(browser, url);
    durability = await measureDurability(browser, url);
  });
} finally {
  await browser.close();
}

const relayValue = !relay
  ? ['n/a', 'bench/relay.mjs not present']
  : relay.error
    ? ['error', relay.error]
    : [`${f(relay.ms, 0)} ms, ${relay.requests} requests`, `${relay.events} events, ${kb(relay.bytes)} sent`];

const { outage, backlog } = durability;
const outageValue = outage.error
  ? ['error', outage.error]
  : [
      `${outage.delivered} of ${outage.events} delivered`,
      `a 3 s 503 outage with the default settings: ${outage.dead} dead-lettered, ${outage.duplicates} duplicates, all in ${f(outage.ms / 1000)} s`,
    ];
const backlogValue = backlog.error
  ? ['error', backlog.error]
  : [
      `longest task ${f(backlog.longestTask, 0)} ms`,
      `${backlog.events} events tracked offline in a closed tab, ${backlog.stored} fitted in localStorage; the next page delivered ${backlog.delivered} in ${backlog.requests} requests, ${f(backlog.ms / 1000)} s, ${backlog.ordered ? 'in order' : 'OUT OF ORDER'}, ${backlog.longTasks} task(s) over 50 ms`,
    ];

const rows = [
  ['package size (gzip -9)', kb(size.wasm + size.glue), `wasm ${kb(size.wasm)} + JS glue ${kb(size.glue)} (${size.glueFiles} file(s))`],
  ['init() + Analytics.load()', `${f(median(init))} ms`, `median of ${init.length} fresh pages (min ${f(Math.min(...init))}, max ${f(Math.max(...init))})`],
  ['track() per call, median', `${f(median(track.samples), 2)} µs`, `${EVENTS} calls, 3 no-op JS destinations, timed in batches of ${track.batch}`],
  ['track() per call, p95', `${f(quantile(track.samples, 0.95), 2)} µs`, `performance.now() steps ${f(track.resolution * 1000, 0)} µs here (clamped), hence the batches`],
  ['track() last 1000 / first 1000', `${f(track.lastMedian / track.firstMedian, 2)}×`, `medians ${f(track.lastMedian, 2)} / ${f(track.firstMedian, 2)} µs; about 1 means no growth with events tracked`],
  [`all ${EVENTS} events at all 3 destinations`, `${f(track.delivered, 0)} ms`, `from the first call; the calls themselves took ${f(track.tracked, 0)} ms`],
  [`relay: deliver events to the local sink`, ...relayValue],
  ['relay: outage with defaults', ...outageValue],
  ['relay: offline backlog taken over', ...backlogValue],
  [`JS heap growth right after ${EVENTS} calls`, kb(track.loopHeap), 'performance.memory.usedJSHeapSize right after the track() loop, before delivery, no GC forced: events waiting plus garbage'],
  [`JS heap held right after ${EVENTS} calls`, kb(track.loopRetained), 'the same after gc(), still before delivery: what the events waiting for delivery hold'],
  [`JS heap growth after ${EVENTS} events`, kb(track.heapGrowth), `JSHeapUsedSize after forced GC, right after delivery; wasm memory grew ${kb(track.wasmGrowth)} (never shrinks)`],
  [`JS heap growth, ${SETTLE_MS / 1000} s later`, kb(track.heapSettled), 'the same once the per-delivery timeout timers (loading.timeoutMs) have fired'],
];

const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length), ['metric', 'value', 'notes'][i].length));
const line = (r) => r.map((c, i) => (i === 2 ? c : c.padEnd(w[i]))).join('  ');
console.log(line(['metric', 'value', 'notes']));
console.log(line(w.map((n) => '-'.repeat(n))));
for (const r of rows) console.log(line(r));
if (track.runtime.length) console.log(`\nbench: the page reported errors:\n${track.runtime.join('\n')}`);
