// The consent-analytics demo page: a consent banner, buttons that send events, and live views of
// what the client does with them (status, dead letters, the relay backend, an event log).
// Plain ES module, no build step. `window.analytics` is the loaded client, for the console.

import init, { Analytics } from '/pkg/consent_analytics.js';

const CONSENT_KEY = 'consent-analytics-demo:consent'; // where the banner keeps the choice

// ---------------------------------------------------------------------------------------------
// Configuration: one entry per destination. Vendor scripts come from local fakes (www/fake/),
// and the ids are made up, so nothing leaves this machine.
// ---------------------------------------------------------------------------------------------
const destinations = [
  // The site's own backend (the dev server's sink). Needs no consent purpose: every event
  // carries its consent stamp so the backend can filter.
  { type: 'relay', id: 'relay', settings: { endpoint: new URL('/v1/batch', location.href).href } },
  // A JavaScript plugin registered below with Analytics.registerDestination.
  { type: 'console-logger', id: 'console', requiredConsent: ['functionality'] },
  { type: 'posthog', settings: { apiKey: 'phc_demo_key', apiHost: location.origin, scriptSrc: '/fake/posthog.js' } },
  { type: 'meta-pixel', settings: { pixelId: '1234567890', scriptSrc: '/fake/fbevents.js' } },
  { type: 'ga4', settings: { measurementId: 'G-DEMO123456', scriptSrc: '/fake/gtag.js' } },
  { type: 'gtm', settings: { containerId: 'GTM-DEMO123', scriptSrc: '/fake/gtm.js' } },
];

const config = {
  consent: loadSavedConsent(), // the visitor's earlier choice, if any
  // Short delays so a person can watch retries, the breaker and the dead-letter queue work.
  retry: { baseDelayMs: 500, maxRetries: 2 },
  circuitBreaker: { failureThreshold: 3, recoveryTimeoutMs: 5000 },
  // `?only=relay,console` keeps only the destinations with those ids.
  destinations: filterByQuery(destinations),
};

/** Registers the JavaScript destination types used above (after `init()`, before `load`). */
function registerPlugins() {
  // Logs each event it receives to the browser console.
  Analytics.registerDestination('console-logger', () => ({
    name: 'console-logger',
    track: (e) => console.log('[console-logger] track', e.event, e.properties),
    page: (e) => console.log('[console-logger] page', e.properties.path),
    identify: (e) => console.log('[console-logger] identify', e.userId, e.traits),
    group: (e) => console.log('[console-logger] group', e.groupId),
    alias: (e) => console.log('[console-logger] alias', e.userId, e.previousId),
    consent: (e) => console.log('[console-logger] consent', e.consent.categoryPreferences),
  }));
}

// ---------------------------------------------------------------------------------------------

const PURPOSES = ['necessary', 'functionality', 'experience', 'measurement', 'marketing'];
const $ = (id) => document.getElementById(id);
let analytics = null;

/** The saved choice, if it is one this page wrote (else the banner asks again). */
function loadSavedConsent() {
  try {
    const saved = JSON.parse(localStorage.getItem(CONSENT_KEY));
    const ok = ['necessary', 'functionality', 'experience', 'measurement', 'marketing'];
    if (saved && typeof saved == 'object' && !Array.isArray(saved) &&
        Object.entries(saved).every(([k, v]) => ok.includes(k) && typeof v == 'boolean')) {
      return saved;
    }
  } catch {}
  return undefined;
}

function filterByQuery(list) {
  const only = new URLSearchParams(location.search).get('only');
  if (!only) return list;
  const ids = only.split(',');
  return list.filter((d) => ids.includes(d.id ?? d.type));
}

/** Builds an element: el('td', {className: 'x'}, 'text', child, ...). */
function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

const time = (ms) => new Date(ms).toLocaleTimeString();
const short = (id) => (id ? String(id).slice(0, 8) : '');
const describe = (e) =>
  !e ? '?' : e.type === 'track' ? `track "${e.event}"` : e.type === 'page' ? `page ${e.properties?.path ?? ''}` : e.type;

// --- event log ---------------------------------------------------------------------------------

function log(kind, text) {
  const list = $('event-log');
  list.prepend(el('li', { className: `log-${kind}`, dataset: { kind } }, el('time', {}, time(Date.now())), ` ${kind} `, text));
  while (list.children.length > 200) list.lastChild.remove();
}

// --- consent banner ----------------------------------------------------------------------------

// The page keeps room below it for the banner, whatever height the banner wraps to.
new ResizeObserver(([entry]) => {
  document.body.style.setProperty('--banner-height', `${entry.target.offsetHeight}px`);
}).observe($('consent-banner'));

function showBanner(show) {
  $('consent-banner').hidden = !show;
  if (show && analytics) {
    const c = analytics.consent();
    for (const box of document.querySelectorAll('#consent-form input[data-purpose]')) {
      box.checked = c[box.dataset.purpose];
    }
  }
}

async function chooseConsent(prefs) {
  try {
    await analytics.setConsent(prefs);
    localStorage.setItem(CONSENT_KEY, JSON.stringify(analytics.consent()));
    showBanner(false);
  } catch (err) {
    log('error', `setConsent: ${err.message}`);
  }
  refresh();
}

const allPurposes = (on) => Object.fromEntries(PURPOSES.filter((p) => p !== 'necessary').map((p) => [p, on]));

function checkedPurposes() {
  const prefs = {};
  for (const box of document.querySelectorAll('#consent-form input[data-purpose]')) {
    if (box.dataset.purpose !== 'necessary') prefs[box.dataset.purpose] = box.checked;
  }
  return prefs;
}

// --- views -------------------------------------------------------------------------------------

// Destinations that delivered since their last error: `status()` keeps reporting a destination's
// last error, and the table shows it only until the destination delivers again.
const recovered = new Set();

function renderStatus() {
  const rows = analytics.status().map((s) =>
    el(
      'tr',
      { dataset: { testid: `status-${s.id}`, state: s.state, circuit: s.circuit } },
      el('td', { dataset: { col: 'id' } }, s.id),
      el('td', { dataset: { col: 'type' } }, s.type),
      el('td', { dataset: { col: 'state' }, className: `state-${s.state}` }, s.state),
      el('td', { dataset: { col: 'circuit' }, className: `circuit-${s.circuit}` }, s.circuit),
      el('td', { dataset: { col: 'delivered' } }, s.delivered),
      el('td', { dataset: { col: 'failed' } }, s.failed),
      el('td', { dataset: { col: 'deadLettered' } }, s.deadLettered),
      el('td', { dataset: { col: 'lastError' }, className: 'error-text' }, s.lastError && !recovered.has(s.id) ? formatError(s.lastError) : ''),
    ),
  );
  $('status-table').tBodies[0].replaceChildren(...rows);
}

function formatError(e) {
  return `${e.kind}${e.status ? ` ${e.status}` : ''}: ${e.message}`;
}

function renderDeadLetters() {
  const list = analytics.deadLetters();
  $('dlq-count').textContent = String(list.length);
  const rows = list.slice(-50).reverse().map((d) =>
    el(
      'tr',
      { dataset: { testid: 'dlq-entry', messageId: d.event?.messageId ?? '' } },
      el('td', {}, d.destination),
      el('td', {}, describe(d.event), ' ', el('small', {}, short(d.event?.messageId))),
      el('td', { className: 'error-text' }, formatError(d.error)),
      el('td', {}, d.attempts),
      el('td', {}, time(d.lastFailedAt)),
    ),
  );
  $('dlq-table').tBodies[0].replaceChildren(...rows);
}

async function renderSink() {
  try {
    const res = await fetch('/sink/events', { cache: 'no-store' });
    const s = await res.json();
    $('sink-count').textContent = String(s.count);
    $('sink-requests').textContent = String(s.requests);
    $('sink-rejected').textContent = String(s.rejected);
    $('sink-duplicates').textContent = String(s.duplicates.length);
    $('sink-mode').textContent = s.mode.mode + (s.mode.status ? ` ${s.mode.status}` : '');
    $('sink-fail').checked = s.mode.mode === 'fail';
    const last = s.events.slice(-5).reverse().map((e) => el('li', {}, describe(e.event), ' ', el('small', {}, short(e.messageId))));
    $('sink-last').replaceChildren(...last);
  } catch (err) {
    $('sink-mode').textContent = `unreachable (${err.message})`;
  }
}

function refresh() {
  if (!analytics) return;
  $('consent-current').textContent = PURPOSES.filter((p) => analytics.consent()[p]).join(', ');
  renderStatus();
  renderDeadLetters();
}

async function setSinkMode(fail) {
  const mode = fail ? { mode: 'fail', status: 503 } : { mode: 'ok' };
  const res = await fetch('/sink/mode', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(mode),
  });
  log('backend', res.ok ? (fail ? 'relay backend now answers 503' : 'relay backend back up') : `could not switch: ${res.status}`);
  await renderSink();
}

// --- wiring ------------------------------------------------------------------------------------

function on(id, fn) {
  $(id).addEventListener('click', async () => {
    try {
      await fn();
    } catch (err) {
      log('error', `${id}: ${err.message}`);
    }
    refresh();
  });
}

function wire() {
  on('btn-track', () => analytics.track('Order Completed', { revenue: 42, currency: 'EUR', orderId: `order-${Date.now()}` }));
  on('btn-page', () => analytics.page());
  on('btn-identify', () => analytics.identify('user-42', { plan: 'pro' }));
  on('btn-burst', () => {
    for (let i = 1; i <= 10; i++) analytics.track('Product Viewed', { position: i });
  });
  on('btn-flush', () => analytics.flush());
  on('consent-open', () => showBanner(true));
  on('consent-accept', () => chooseConsent(allPurposes(true)));
  on('consent-reject', () => chooseConsent(allPurposes(false)));
  on('consent-save', () => chooseConsent(checkedPurposes()));
  on('dlq-retry', async () => {
    $('dlq-result').textContent = 'retrying…';
    const r = await analytics.retryDeadLetters();
    $('dlq-result').textContent = JSON.stringify(r);
    log('retry', `dead letters: ${JSON.stringify(r)}`);
  });
  on('dlq-clear', () => {
    $('dlq-result').textContent = `cleared ${analytics.clearDeadLetters()}`;
  });

  analytics.on('delivered', (d) => {
    recovered.add(d.destination);
    log('delivered', `${describe(d.event)} → ${d.destination}`);
  });
  analytics.on('error', (e) => {
    recovered.delete(e.destination);
    log('error', `${e.destination ?? 'page'}: ${formatError(e.error)}`);
  });
  analytics.on('dead-letter', (d) => log('dead-letter', `${describe(d.event)} for ${d.destination} after ${d.attempts} attempts`));
  analytics.on('consent', (c) => log('consent', PURPOSES.map((p) => `${p}: ${c[p]}`).join(', ')));
  analytics.on('loaded', (d) => log('loaded', d.destination));
}

async function main() {
  const state = $('app-state');
  // The backend switch and panel work even when the client fails to load.
  $('sink-fail').addEventListener('change', (e) => setSinkMode(e.target.checked));
  $('log-clear').addEventListener('click', () => $('event-log').replaceChildren());
  renderSink();
  setInterval(renderSink, 1000);
  try {
    await init();
    registerPlugins();
    analytics = await Analytics.load(config);
  } catch (err) {
    state.dataset.state = 'error';
    state.textContent = 'The analytics client did not load:';
    const box = $('load-error');
    box.textContent = err?.message ?? String(err);
    box.hidden = false;
    console.error('[demo] load failed:', err);
    for (const b of document.querySelectorAll('#actions button, #dead-letters button')) b.disabled = true;
    return;
  }
  window.analytics = analytics;
  wire();
  state.dataset.state = 'ready';
  state.textContent = `Ready: ${config.destinations.length} destinations configured.`;
  showBanner(config.consent === undefined);
  refresh();
  setInterval(refresh, 500);
}

main();
