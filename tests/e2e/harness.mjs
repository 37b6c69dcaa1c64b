// Helpers for the end-to-end tests (node --test tests/e2e/).
//
//   const browser = await launchBrowser();
//   await withServer(async (server) => {
//     const p = await openPage(browser, `${server.url}/blank.html`);
//     ...
//     assert.deepEqual(p.runtimeErrors(), []);
//     await p.close();
//   });
//   await browser.close();

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../../www/server.mjs';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The flags of webdriver.json, plus the two needed when running as root in a container. */
export const CHROMIUM_ARGS = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-gpu',
  '--disable-quic',
  '--no-sandbox',
  '--disable-dev-shm-usage',
];

/** Launches the system Chromium, headless. Close it with `browser.close()`. */
export function launchBrowser(options = {}) {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    ...options,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}

/**
 * Starts the dev server on a free port with a fresh temporary data directory, runs
 * `fn(server)`, then closes the server and removes the directory. Returns what `fn` returns.
 * `server` is what startServer returns ({url, port, close, log, sink}) plus `dataDir`.
 */
export async function withServer(fn, options = {}) {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-e2e-'));
  const server = await startServer({ port: 0, quiet: true, ...options, dataDir });
  try {
    return await fn({ ...server, dataDir });
  } finally {
    await server.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

const RUNTIME_ERROR = /RuntimeError|unreachable|panicked|wasm-function/i;

/**
 * Opens `url` in a new browser context (own storage) and collects what the page reports.
 * Returns {page, context, messages, errors, runtimeErrors(), close()}:
 *   messages: [{type, text}] from the console, errors: [string] from uncaught page errors,
 *   runtimeErrors(): the messages and errors that look like a wasm trap or a Rust panic.
 * Options: contextOptions (for browser.newContext), waitUntil (default 'load').
 */
export async function openPage(browser, url, { contextOptions = {}, waitUntil = 'load' } = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const messages = [];
  const errors = [];
  page.on('console', (msg) => messages.push({ type: msg.type(), text: msg.text() }));
  page.on('pageerror', (err) => errors.push(`${err.name}: ${err.message}\n${err.stack ?? ''}`));
  if (url) await page.goto(url, { waitUntil });
  return {
    page,
    context,
    messages,
    errors,
    runtimeErrors() {
      return [
        ...errors.filter((e) => RUNTIME_ERROR.test(e)),
        ...messages.filter((m) => m.type === 'error' && RUNTIME_ERROR.test(m.text)).map((m) => m.text),
      ];
    },
    close: () => context.close(),
  };
}

async function call(base, route, { method = 'GET', body } = {}) {
  const res = await fetch(new URL(route, base), {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** GET /sink/events: {events, count, duplicates, requests, aborted, maxInFlight, accepted, rejected, bytes, lastAuthorization, ...} */
export const sinkEvents = (url) => call(url, '/sink/events');

/**
 * POST /sink/mode: {mode:'ok'} | {mode:'fail', status, retryAfter?} | {mode:'sequence', statuses}
 * where each of `statuses` is a status or {status, retryAfter?, delayMs?} (delayMs: answer, and
 * take the batch, only after that long; a request the client closes first is counted aborted).
 */
export const setSinkMode = (url, mode) => call(url, '/sink/mode', { method: 'POST', body: mode });

/** POST /sink/reset: clears recorded events, counters, the JSONL file and the mode. */
export const resetSink = (url) => call(url, '/sink/reset', { method: 'POST', body: {} });

/** GET /__log: [{time, method, path, query, url}] for every request the server saw. */
export const requestLog = (url) => call(url, '/__log');

/** POST /__log/clear */
export const clearLog = (url) => call(url, '/__log/clear', { method: 'POST', body: {} });

/** Polls `fn` until it returns a truthy value (returned) or `timeout` ms pass (throws). */
export async function waitFor(fn, { timeout = 5000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
