// End-to-end tests of the built-in vendor destinations (posthog, meta-pixel, ga4, gtm) in real
// Chromium against the dev server, with the local fake vendor scripts of www/fake/ standing in
// for the vendors' CDNs. Each fake records every call it receives in window.__vendorCalls.
//
//   npm run build && node --test tests/e2e/vendors.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, requestLog, waitFor } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Runs `fn(server, p)` with a fresh server and a fresh page on /blank.html. */
function run(fn) {
  return withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    try {
      await fn(server, p);
      assert.deepEqual(p.runtimeErrors(), []);
    } finally {
      await p.close();
    }
  });
}

/** Loads the package and `Analytics.load(config)` into `window.a`; returns the rejection message. */
function boot(p, config) {
  return p.page.evaluate(async (config) => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.errors = [];
    try {
      window.a = await m.Analytics.load(config);
    } catch (e) {
      return String(e?.message ?? e);
    }
    window.a.on('error', (e) =>
      window.errors.push({ destination: e.destination, kind: e.error.kind, message: e.error.message }),
    );
    return null;
  }, config);
}

/** The calls a fake vendor recorded: dates become '<Date>', `gtm.start` its type. */
function calls(p, vendor) {
  return p.page.evaluate(
    (vendor) =>
      (window.__vendorCalls?.[vendor] ?? []).map((c) =>
        Array.isArray(c)
          ? c.map((x) => (x instanceof Date ? '<Date>' : x))
          : 'gtm.start' in c
            ? { ...c, 'gtm.start': typeof c['gtm.start'] }
            : c,
      ),
    vendor,
  );
}

/** Waits until the fake recorded `expected.length` calls, then asserts the whole list. */
async function expectCalls(p, vendor, expected, what) {
  await waitFor(async () => (await calls(p, vendor)).length >= expected.length, {
    message: `${vendor}: ${what}`,
  }).catch(async (e) => {
    assert.deepEqual(await calls(p, vendor), expected, `${vendor}: ${what} (${e.message})`);
  });
  assert.deepEqual(await calls(p, vendor), expected, `${vendor}: ${what}`);
}

/** The fake vendor script elements in the document. */
function fakeScripts(p) {
  return p.page.evaluate(() =>
    [...document.querySelectorAll('script[src]')]
      .filter((s) => new URL(s.src).pathname.startsWith('/fake/'))
      .map((s) => ({ id: s.id, path: new URL(s.src).pathname, nonce: s.nonce })),
  );
}

/** How many times the server was asked for `path`. */
async function requests(server, path) {
  return (await requestLog(server.url)).filter((r) => r.path === path).length;
}

const loads = (p, vendor) => p.page.evaluate((v) => window.__vendorLoads?.[v] ?? 0, vendor);

/** What `page()` adds to the properties on /blank.html. */
const pageProps = (server) => ({
  path: '/blank.html',
  referrer: '',
  search: '',
  title: 'blank',
  url: `${server.url}/blank.html`,
});

/** Consent Mode v2 state with the given purposes granted (necessary always). */
function consentMode(granted) {
  const g = (on) => (on ? 'granted' : 'denied');
  const has = (p) => granted.includes(p);
  return {
    security_storage: 'granted',
    functionality_storage: g(has('functionality')),
    personalization_storage: g(has('experience')),
    analytics_storage: g(has('measurement')),
    ad_storage: g(has('marketing')),
    ad_user_data: g(has('marketing')),
    ad_personalization: g(has('marketing')),
  };
}

/** Lets pending deliveries run, so a late duplicate call would show up. */
const settle = (p) => p.page.evaluate(() => new Promise((r) => setTimeout(r, 300)));

describe('posthog', () => {
  test('nothing before consent; then init and every event type mapped, in order, exactly once', () =>
    run(async (server, p) => {
      assert.equal(
        await boot(p, {
          nonce: 'ph-nonce',
          destinations: [
            { type: 'posthog', settings: { apiKey: 'phc_test', scriptSrc: '/fake/posthog.js' } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => {
        a.page();
        a.track('Signup', { plan: 'pro' });
      });
      await settle(p);
      assert.equal(await requests(server, '/fake/posthog.js'), 0, 'no request before consent');
      assert.deepEqual(await fakeScripts(p), [], 'no element before consent');
      assert.equal(await p.page.evaluate(() => typeof window.posthog), 'undefined', 'no stub');

      await p.page.evaluate(() => a.setConsent({ measurement: true }));
      await settle(p);
      assert.equal(await requests(server, '/fake/posthog.js'), 0, 'lazy: nothing before an event');

      await p.page.evaluate(() => {
        a.page('Home', { section: 'landing' });
        a.track('Order Completed', { revenue: 42, currency: 'EUR' });
        a.identify('user-1', { email: 'ann@example.com' });
        a.group('acme', { plan: 'enterprise' });
        a.alias('user-2');
      });
      const delivered = [
        ['init', 'phc_test', { api_host: 'https://us.i.posthog.com', capture_pageview: false }],
        ['opt_in_capturing', { captureEventName: null }],
        ['capture', '$pageview', { ...pageProps(server), section: 'landing', name: 'Home' }],
        ['capture', 'Order Completed', { revenue: 42, currency: 'EUR' }],
        ['identify', 'user-1', { email: 'ann@example.com' }],
        ['group', 'company', 'acme', { plan: 'enterprise' }],
        ['alias', 'user-2', 'user-1'],
      ];
      await expectCalls(p, 'posthog', delivered, 'events after the grant');
      assert.equal(await requests(server, '/fake/posthog.js'), 1);
      assert.equal(await loads(p, 'posthog'), 1);
      assert.deepEqual(await fakeScripts(p), [
        { id: 'consent-analytics-posthog', path: '/fake/posthog.js', nonce: 'ph-nonce' },
      ]);

      // A change to a purpose PostHog does not follow is not an opt-in.
      await p.page.evaluate(() => a.setConsent({ marketing: true }));
      await p.page.evaluate(() => a.setConsent({ measurement: false }));
      await p.page.evaluate(() => a.track('After Revoke'));
      await expectCalls(p, 'posthog', [...delivered, ['opt_out_capturing']], 'revocation');
      assert.deepEqual(await fakeScripts(p), [], 'revocation removes the element');

      await p.page.evaluate(() => a.setConsent({ measurement: true }));
      await p.page.evaluate(() => a.track('Back', { n: 1 }));
      await expectCalls(
        p,
        'posthog',
        [...delivered, ['opt_out_capturing'], ['opt_in_capturing'], ['capture', 'Back', { n: 1 }]],
        're-grant',
      );
      await settle(p);
      assert.equal((await calls(p, 'posthog')).length, 10, 'no late or duplicate call');
      assert.equal(await requests(server, '/fake/posthog.js'), 1, 'never fetched twice');
      assert.equal(await loads(p, 'posthog'), 1);
      assert.deepEqual(await p.page.evaluate(() => window.errors), []);
    }));
});

describe('meta-pixel', () => {
  test('standard names use track, others trackCustom; PageView; revoke', () =>
    run(async (server, p) => {
      assert.equal(
        await boot(p, {
          destinations: [
            { type: 'meta-pixel', settings: { pixelId: '1234567890', scriptSrc: '/fake/fbevents.js' } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => a.track('Purchase', { value: 1 }));
      await p.page.evaluate(() => a.setConsent({ measurement: true }));
      await p.page.evaluate(() => a.track('Purchase', { value: 2 }));
      await settle(p);
      assert.equal(await requests(server, '/fake/fbevents.js'), 0, 'no request without marketing');
      assert.deepEqual(await fakeScripts(p), []);
      assert.equal(await p.page.evaluate(() => typeof window.fbq), 'undefined');

      await p.page.evaluate(() => a.setConsent({ marketing: true }));
      await p.page.evaluate(() => {
        a.page();
        a.track('Purchase', { value: 10, currency: 'EUR' });
        a.track('Wishlist Shared', { id: 7 });
        a.track('purchase');
        a.track('Lead');
        a.identify('u-1', { email: 'x@example.com' });
      });
      const expected = [
        ['init', '1234567890'],
        ['track', 'PageView'],
        ['track', 'Purchase', { value: 10, currency: 'EUR' }],
        ['trackCustom', 'Wishlist Shared', { id: 7 }],
        ['trackCustom', 'purchase', {}],
        ['track', 'Lead', {}],
      ];
      await expectCalls(p, 'fbq', expected, 'events after the grant');
      assert.equal(await requests(server, '/fake/fbevents.js'), 1);
      assert.equal((await fakeScripts(p)).length, 1);

      await p.page.evaluate(() => a.setConsent({ marketing: false }));
      await p.page.evaluate(() => a.track('Purchase', { value: 3 }));
      await expectCalls(p, 'fbq', [...expected, ['consent', 'revoke']], 'revocation');
      assert.deepEqual(await fakeScripts(p), [], 'revocation removes the element');
      await settle(p);
      assert.equal((await calls(p, 'fbq')).length, expected.length + 1, 'nothing after revoke');
    }));

  test('calls queued in the stub while the script loads are replayed once, in order', () =>
    run(async (server, p) => {
      let release;
      const gate = new Promise((r) => (release = r));
      await p.page.route('**/fake/fbevents.js', async (route) => {
        await gate;
        await route.continue();
      });
      assert.equal(
        await boot(p, {
          consent: { marketing: true },
          destinations: [
            { type: 'meta-pixel', settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => a.track('AddToCart', { sku: 'A1' }));
      await waitFor(() => p.page.evaluate(() => typeof window.fbq === 'function'), {
        message: 'the fbq stub',
      });
      // The page uses the stub before the vendor script arrived.
      const queued = await p.page.evaluate(() => {
        fbq('trackCustom', 'FromPage', { a: 1 });
        return fbq.queue.map((args) => [...args]);
      });
      assert.deepEqual(queued, [['init', '42'], ['trackCustom', 'FromPage', { a: 1 }]]);
      assert.equal(await p.page.evaluate(() => window.__vendorCalls?.fbq), undefined);
      release();
      await expectCalls(
        p,
        'fbq',
        [['init', '42'], ['trackCustom', 'FromPage', { a: 1 }], ['track', 'AddToCart', { sku: 'A1' }]],
        'replay then delivery',
      );
      await p.page.evaluate(() => fbq('track', 'Search', { q: 'x' }));
      await settle(p);
      assert.deepEqual(await calls(p, 'fbq'), [
        ['init', '42'],
        ['trackCustom', 'FromPage', { a: 1 }],
        ['track', 'AddToCart', { sku: 'A1' }],
        ['track', 'Search', { q: 'x' }],
      ]);
      assert.equal(await loads(p, 'fbq'), 1);
      assert.equal(await requests(server, '/fake/fbevents.js'), 1);
    }));
});

describe('failed script load', () => {
  test('a retried load does not queue the init calls twice', () =>
    run(async (server, p) => {
      let attempts = 0;
      await p.page.route('**/fake/fbevents.js', async (route) => {
        attempts += 1;
        if (attempts === 1) await route.abort();
        else await route.continue();
      });
      assert.equal(
        await boot(p, {
          consent: { marketing: true },
          retry: { baseDelayMs: 20, maxDelayMs: 50 },
          destinations: [
            { type: 'meta-pixel', settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => a.track('Lead'));
      await expectCalls(p, 'fbq', [['init', '42'], ['track', 'Lead', {}]], 'after the retry');
      await settle(p);
      assert.equal((await calls(p, 'fbq')).length, 2);
      assert.equal(attempts, 2);
      assert.equal((await fakeScripts(p)).length, 1, 'the failed element was removed');
      const errors = await p.page.evaluate(() => window.errors);
      assert.deepEqual(errors.map((e) => [e.destination, e.kind]), [['meta-pixel', 'script_load']]);
    }));
});

describe('ga4', () => {
  test('consent default before config, events, identify, updates on change, revoke', () =>
    run(async (server, p) => {
      assert.equal(
        await boot(p, {
          consent: { measurement: true },
          nonce: 'ga-nonce',
          destinations: [
            { type: 'ga4', settings: { measurementId: 'G-TEST123', scriptSrc: '/fake/gtag.js' } },
          ],
        }),
        null,
      );
      await settle(p);
      assert.equal(await requests(server, '/fake/gtag.js'), 0, 'lazy: nothing before an event');
      assert.deepEqual(await fakeScripts(p), []);

      await p.page.evaluate(() => {
        a.page('Home', { section: 'x' });
        a.track('sign_up', { method: 'email' });
        a.identify('u-9');
        a.group('acme');
      });
      const start = [
        ['consent', 'default', consentMode(['measurement'])],
        ['js', '<Date>'],
        ['config', 'G-TEST123', { send_page_view: false }],
        [
          'event',
          'page_view',
          {
            ...pageProps(server),
            section: 'x',
            name: 'Home',
            page_location: `${server.url}/blank.html`,
            page_path: '/blank.html',
            page_title: 'blank',
            page_referrer: '',
          },
        ],
        ['event', 'sign_up', { method: 'email' }],
        ['set', { user_id: 'u-9' }],
      ];
      await expectCalls(p, 'gtag', start, 'load and events');
      assert.deepEqual(await fakeScripts(p), [
        { id: 'consent-analytics-ga4', path: '/fake/gtag.js', nonce: 'ga-nonce' },
      ]);
      assert.equal(await requests(server, '/fake/gtag.js'), 1);

      await p.page.evaluate(() => a.setConsent({ marketing: true }));
      const updated = [...start, ['consent', 'update', consentMode(['measurement', 'marketing'])]];
      await expectCalls(p, 'gtag', updated, 'update after setConsent');

      await p.page.evaluate(() => a.setConsent({ measurement: false }));
      await p.page.evaluate(() => a.track('after_revoke'));
      const revoked = [...updated, ['consent', 'update', consentMode(['marketing'])]];
      await expectCalls(p, 'gtag', revoked, 'revocation');
      assert.deepEqual(await fakeScripts(p), [], 'revocation removes the element');
      await settle(p);
      assert.equal((await calls(p, 'gtag')).length, revoked.length, 'nothing after revoke');
      assert.equal(await loads(p, 'gtag'), 1);
    }));
});

describe('gtm', () => {
  test('loads under necessary; consent default, gtm.js, events and updates in dataLayer', () =>
    run(async (server, p) => {
      assert.equal(
        await boot(p, {
          destinations: [
            { type: 'gtm', settings: { containerId: 'GTM-ABC123', scriptSrc: '/fake/gtm.js' } },
          ],
        }),
        null,
      );
      await settle(p);
      assert.equal(await requests(server, '/fake/gtm.js'), 0, 'lazy: nothing before an event');
      await p.page.evaluate(() => {
        a.track('Add To Cart', { sku: 'A1', event: 'not the name' });
        a.page();
        a.identify('u-1');
      });
      const start = [
        ['consent', 'default', consentMode([])],
        { 'gtm.start': 'number', event: 'gtm.js' },
        { event: 'Add To Cart', sku: 'A1' },
        { event: 'page_view', ...pageProps(server) },
      ];
      await expectCalls(p, 'gtm', start, 'load and events');
      assert.equal(await requests(server, '/fake/gtm.js'), 1);
      assert.equal((await fakeScripts(p)).length, 1);

      await p.page.evaluate(() => a.setConsent({ measurement: true, functionality: true }));
      await p.page.evaluate(() => a.track('Checkout'));
      await expectCalls(
        p,
        'gtm',
        [
          ...start,
          ['consent', 'update', consentMode(['measurement', 'functionality'])],
          { event: 'Checkout' },
        ],
        'consent update',
      );
      assert.equal((await fakeScripts(p)).length, 1, 'necessary is never revoked');
      await settle(p);
      const before = await calls(p, 'gtm');
      assert.equal(before.length, start.length + 2);

      // unloadDestination removes the element; the next event loads it again from the start.
      await p.page.evaluate(() => a.unloadDestination('gtm'));
      assert.deepEqual(await fakeScripts(p), []);
      await p.page.evaluate(() => a.track('Again'));
      await expectCalls(
        p,
        'gtm',
        [
          ...before,
          ['consent', 'default', consentMode(['measurement', 'functionality'])],
          { 'gtm.start': 'number', event: 'gtm.js' },
          { event: 'Again' },
        ],
        'reload after unloadDestination',
      );
      assert.equal((await fakeScripts(p)).length, 1);
      assert.equal(await requests(server, '/fake/gtm.js'), 2);
    }));
});

describe('all vendors together', () => {
  test('only consented vendors load; a throwing vendor fails alone', () =>
    run(async (server, p) => {
      const fake = (name) => `/fake/${name}.js`;
      assert.equal(
        await boot(p, {
          retry: { maxRetries: 0 },
          destinations: [
            { type: 'posthog', settings: { apiKey: 'phc_x', scriptSrc: fake('posthog') } },
            { type: 'meta-pixel', settings: { pixelId: '7', scriptSrc: fake('fbevents') } },
            { type: 'ga4', settings: { measurementId: 'G-X1', scriptSrc: fake('gtag') } },
            { type: 'gtm', settings: { containerId: 'GTM-X1', scriptSrc: fake('gtm') } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => a.track('Lead'));
      await expectCalls(
        p,
        'gtm',
        [['consent', 'default', consentMode([])], { 'gtm.start': 'number', event: 'gtm.js' }, { event: 'Lead' }],
        'gtm under necessary',
      );
      await settle(p);
      for (const f of ['posthog', 'fbevents', 'gtag']) {
        assert.equal(await requests(server, fake(f)), 0, `${f} not requested without consent`);
      }
      assert.deepEqual((await fakeScripts(p)).map((s) => s.path), ['/fake/gtm.js']);
      assert.deepEqual(await p.page.evaluate(() => [typeof window.posthog, typeof window.fbq]), [
        'undefined',
        'undefined',
      ]);

      await p.page.evaluate(() => a.setConsent({ measurement: true, marketing: true }));
      await p.page.evaluate(() => a.track('Lead', { v: 1 }));
      await expectCalls(p, 'posthog', [
        ['init', 'phc_x', { api_host: 'https://us.i.posthog.com', capture_pageview: false }],
        ['opt_in_capturing', { captureEventName: null }],
        ['capture', 'Lead', { v: 1 }],
      ], 'posthog after the grant');
      await expectCalls(p, 'fbq', [['init', '7'], ['track', 'Lead', { v: 1 }]], 'meta after the grant');
      await waitFor(async () => (await calls(p, 'gtag')).some((c) => c[0] === 'event'), {
        message: 'ga4 event',
      });
      assert.deepEqual((await fakeScripts(p)).map((s) => s.path).sort(), [
        '/fake/fbevents.js',
        '/fake/gtag.js',
        '/fake/gtm.js',
        '/fake/posthog.js',
      ]);

      // PostHog now throws: its delivery fails with kind 'unknown'; the others still receive.
      await p.page.evaluate(() => {
        window.__vendorFail = { posthog: true };
        a.track('Purchase', { value: 5 });
      });
      await waitFor(() => p.page.evaluate(() => window.errors.length > 0), { message: 'an error' });
      const errors = await p.page.evaluate(() => window.errors);
      assert.equal(errors[0].destination, 'posthog');
      assert.equal(errors[0].kind, 'unknown');
      assert.match(errors[0].message, /capture threw: posthog\.capture failed/);
      await expectCalls(
        p,
        'fbq',
        [['init', '7'], ['track', 'Lead', { v: 1 }], ['track', 'Purchase', { value: 5 }]],
        'meta unaffected',
      );
      await waitFor(
        async () => (await calls(p, 'gtag')).some((c) => c[0] === 'event' && c[1] === 'Purchase'),
        { message: 'ga4 unaffected' },
      );
      assert.ok(errors.every((e) => e.destination === 'posthog'), JSON.stringify(errors));
      assert.equal((await calls(p, 'posthog')).length, 3, 'the failed call recorded nothing');
    }));
});

describe('settings', () => {
  const cases = [
    [{ type: 'posthog', settings: {} }, 'config.destinations[0].settings.apiKey is required'],
    [{ type: 'posthog', settings: { apiKey: 'k', apikey: 'k' } }, 'config.destinations[0].settings.apikey'],
    [{ type: 'posthog', settings: { apiKey: 7 } }, 'config.destinations[0].settings.apiKey must be a string'],
    [{ type: 'meta-pixel' }, 'config.destinations[0].settings.pixelId is required'],
    [{ type: 'meta-pixel', settings: { pixelId: 'abc' } }, 'config.destinations[0].settings.pixelId must be'],
    [{ type: 'ga4', settings: { measurementId: 'UA-1234-1' } }, 'config.destinations[0].settings.measurementId must be'],
    [{ type: 'ga4', settings: { measurementId: 'G-1', sendPageView: true } }, 'config.destinations[0].settings.sendPageView'],
    [{ type: 'gtm', settings: { containerId: 'GTM-' } }, 'config.destinations[0].settings.containerId must be'],
    [
      { type: 'gtm', settings: { containerId: 'GTM-A1', scriptSrc: 'javascript:alert(1)' } },
      'config.destinations[0].settings.scriptSrc: script URL refused',
    ],
    [
      { type: 'meta-pixel', settings: { pixelId: '1', scriptSrc: 'http://evil.example/fbevents.js' } },
      'http://evil.example/fbevents.js',
    ],
  ];
  test('bad settings reject Analytics.load naming the field; nothing is injected', () =>
    run(async (server, p) => {
      for (const [entry, expected] of cases) {
        const message = await boot(p, { consent: { marketing: true, measurement: true }, destinations: [entry] });
        assert.ok(message?.includes(expected), `${JSON.stringify(entry)}: got ${message}`);
      }
      assert.deepEqual(await fakeScripts(p), []);
      assert.equal(await p.page.evaluate(() => document.querySelectorAll('script').length), 0);
      assert.equal(
        (await requestLog(server.url)).filter((r) => r.path.startsWith('/fake/')).length,
        0,
      );
    }));
});

describe('consent changes around a load', () => {
  /** Holds requests for `path` until the returned function is called. */
  async function hold(p, path) {
    let release;
    const gate = new Promise((r) => (release = r));
    await p.page.route(`**${path}`, async (route) => {
      await gate;
      await route.continue();
    });
    return release;
  }

  test('revoked while the script is in flight: the vendor is told right after its init calls', () =>
    run(async (server, p) => {
      const releases = [await hold(p, '/fake/posthog.js'), await hold(p, '/fake/fbevents.js')];
      const config = {
        consent: { measurement: true, marketing: true },
        destinations: [
          { type: 'posthog', settings: { apiKey: 'k', apiHost: 'https://ph.example', scriptSrc: '/fake/posthog.js' } },
          { type: 'meta-pixel', settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } },
        ],
      };
      assert.equal(await boot(p, config), null);
      await p.page.evaluate(() => a.track('Lead'));
      await waitFor(async () => (await fakeScripts(p)).length === 2, { message: 'both scripts injected' });
      await p.page.evaluate(() => a.setConsent({ measurement: false, marketing: false }));
      assert.deepEqual(await fakeScripts(p), [], 'revocation removes the elements');
      // The browser still runs a script it was fetching: what it finds in the stub must end
      // with the revocation.
      releases.forEach((r) => r());
      await expectCalls(
        p,
        'posthog',
        [
          ['init', 'k', { api_host: 'https://ph.example', capture_pageview: false }],
          ['opt_in_capturing', { captureEventName: null }],
          ['opt_out_capturing'],
        ],
        'init, then the revocation',
      );
      await expectCalls(p, 'fbq', [['init', '42'], ['consent', 'revoke']], 'init, then the revocation');
      await settle(p);
      assert.equal((await calls(p, 'posthog')).length, 3, 'the event captured before is not sent');
      assert.equal((await calls(p, 'fbq')).length, 2);
    }));

  test('Consent Mode follows changes made while GA4 was not loaded', () =>
    run(async (server, p) => {
      const release = await hold(p, '/fake/gtag.js');
      const config = {
        consent: { measurement: true },
        destinations: [{ type: 'ga4', settings: { measurementId: 'G-T1', scriptSrc: '/fake/gtag.js' } }],
      };
      assert.equal(await boot(p, config), null);
      await p.page.evaluate(() => a.track('first'));
      await waitFor(async () => (await fakeScripts(p)).length === 1, { message: 'gtag.js injected' });
      // GA4 loses measurement mid-load (the load is abandoned), marketing is granted, then
      // measurement comes back and the next event loads GA4 again.
      await p.page.evaluate(() => a.setConsent({ measurement: false, marketing: true }));
      await p.page.evaluate(() => a.setConsent({ measurement: true }));
      await p.page.evaluate(() => a.track('second'));
      release();
      await expectCalls(
        p,
        'gtag',
        [
          ['consent', 'default', consentMode(['measurement'])],
          ['js', '<Date>'],
          ['config', 'G-T1', { send_page_view: false }],
          ['consent', 'update', consentMode(['marketing'])],
          ['consent', 'update', consentMode(['measurement', 'marketing'])],
          ['event', 'second', {}],
        ],
        'every change told, in order',
      );
    }));

  test('retryDeadLetters and retryDestination load nothing while consent is missing', () =>
    run(async (server, p) => {
      let failing = true;
      await p.page.route('**/fake/fbevents.js', (route) => (failing ? route.abort() : route.continue()));
      const destinations = [{ type: 'meta-pixel', settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } }];
      assert.equal(await boot(p, { consent: { marketing: true }, loading: { maxRetries: 0 }, destinations }), null);
      await p.page.evaluate(() => a.track('Purchase', { value: 1 }));
      await waitFor(() => p.page.evaluate(() => a.deadLetters().length === 1), { message: 'a dead letter' });
      failing = false;

      // The next page view: marketing not (yet) granted.
      await p.page.reload();
      assert.equal(await boot(p, { loading: { maxRetries: 0 }, destinations }), null);
      const before = await requests(server, '/fake/fbevents.js');
      const r = await p.page.evaluate(() => a.retryDeadLetters());
      assert.deepEqual(r, { retried: 1, succeeded: 0, failed: 1 }, 'kept for later');
      await p.page.evaluate(() => a.retryDestination('meta-pixel'));
      await settle(p);
      assert.equal(await requests(server, '/fake/fbevents.js'), before, 'no request for the script');
      assert.deepEqual(await fakeScripts(p), []);
      assert.equal(await p.page.evaluate(() => a.status()[0].state), 'blocked');
      assert.equal(await p.page.evaluate(() => a.deadLetters().length), 1);

      // With marketing granted the replay delivers.
      await p.page.evaluate(() => a.setConsent({ marketing: true }));
      const r2 = await p.page.evaluate(() => a.retryDeadLetters());
      assert.deepEqual(r2, { retried: 1, succeeded: 1, failed: 0 });
      await expectCalls(p, 'fbq', [['init', '42'], ['track', 'Purchase', { value: 1 }]], 'the replay');
    }));
});

describe('the vendor switch follows the destination requiredConsent', () => {
  test('losing any configured purpose switches PostHog and Meta off; an empty one keeps them on', () =>
    run(async (server, p) => {
      assert.equal(
        await boot(p, {
          consent: { measurement: true, marketing: true },
          destinations: [
            { type: 'posthog', requiredConsent: ['measurement', 'marketing'], settings: { apiKey: 'phc_a', scriptSrc: '/fake/posthog.js' } },
            { type: 'meta-pixel', requiredConsent: ['measurement', 'marketing'], settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } },
          ],
        }),
        null,
      );
      await p.page.evaluate(() => a.track('Lead'));
      await expectCalls(p, 'posthog', [
        ['init', 'phc_a', { api_host: 'https://us.i.posthog.com', capture_pageview: false }],
        ['opt_in_capturing', { captureEventName: null }],
        ['capture', 'Lead', {}],
      ], 'posthog on');
      await p.page.evaluate(() => a.setConsent({ marketing: false }));
      await settle(p);
      assert.deepEqual((await calls(p, 'posthog')).at(-1), ['opt_out_capturing'], 'posthog told');
      assert.deepEqual((await calls(p, 'fbq')).at(-1), ['consent', 'revoke'], 'meta told');
    }));

  test('Meta Pixel with requiredConsent measurement starts granted when measurement is', () =>
    run(async (server, p) => {
      await boot(p, {
        consent: { measurement: true },
        destinations: [{ type: 'meta-pixel', requiredConsent: ['measurement'], settings: { pixelId: '42', scriptSrc: '/fake/fbevents.js' } }],
      });
      await p.page.evaluate(() => a.track('Purchase', { value: 1 }));
      await expectCalls(p, 'fbq', [['init', '42'], ['track', 'Purchase', { value: 1 }]], 'no revoke first');
    }));
});

test('settings: a PostHog apiHost without its scheme and an empty scriptSrc are refused, naming the field', () =>
  run(async (server, p) => {
    const host = await boot(p, { destinations: [{ type: 'posthog', settings: { apiKey: 'k', apiHost: 'eu.i.posthog.com' } }] });
    assert.match(host, /config\.destinations\[0\]\.settings\.apiHost must be an http\(s\) URL: eu\.i\.posthog\.com/);
    const src = await boot(p, { destinations: [{ type: 'ga4', settings: { measurementId: 'G-AB1', scriptSrc: '' } }] });
    assert.match(src, /config\.destinations\[0\]\.settings\.scriptSrc must be a non-empty URL/);
  }));


test('a second destination of the same vendor type is refused, naming the entry', () =>
  run(async (server, p) => {
    const m = await boot(p, {
      destinations: [
        { type: 'meta-pixel', id: 'a', settings: { pixelId: '111' } },
        { type: 'meta-pixel', id: 'b', settings: { pixelId: '222' } },
      ],
    });
    assert.match(m, /config\.destinations\[1\]: a second 'meta-pixel' destination is not supported/);
  }));

test('reset() makes PostHog and GA4 forget the user; Meta and GTM keep no user id', () =>
  run(async (server, p) => {
    assert.equal(
      await boot(p, {
        consent: { measurement: true },
        destinations: [
          { type: 'posthog', settings: { apiKey: 'phc_test', scriptSrc: '/fake/posthog.js' } },
          { type: 'ga4', settings: { measurementId: 'G-R1', scriptSrc: '/fake/gtag.js' } },
        ],
      }),
      null,
    );
    // Before a load there is nothing to forget: no stub is created by a reset.
    await p.page.evaluate(() => a.reset());
    assert.equal(await p.page.evaluate(() => typeof window.posthog), 'undefined');
    await p.page.evaluate(() => a.identify('u-1'));
    await waitFor(async () => (await calls(p, 'posthog')).some((c) => c[0] === 'identify'));
    await waitFor(async () => (await calls(p, 'gtag')).some((c) => c[0] === 'set'));
    await p.page.evaluate(() => a.reset());
    await waitFor(async () => (await calls(p, 'posthog')).some((c) => c[0] === 'reset'), {
      message: 'posthog.reset()',
    });
    const gtag = await calls(p, 'gtag');
    assert.deepEqual(gtag.at(-1), ['set', { user_id: null }]);
    assert.equal((await calls(p, 'posthog')).filter((c) => c[0] === 'reset').length, 1);
  }));

test('PostHog behind a reverse proxy apiHost loads its script from that host', () =>
  run(async (server, p) => {
    const host = `${server.url}/ph-proxy`;
    assert.equal(
      await boot(p, {
        consent: { measurement: true },
        loading: { maxRetries: 0, timeoutMs: 2000 },
        destinations: [{ type: 'posthog', settings: { apiKey: 'phc_test', apiHost: host } }],
      }),
      null,
    );
    await p.page.evaluate(() => a.track('Proxied'));
    await waitFor(async () => (await requests(server, '/ph-proxy/static/array.js')) === 1, {
      message: 'the script is asked of the proxy',
    });
    const ids = await p.page.evaluate(() => [...document.scripts].map((s) => s.src));
    assert.ok(!ids.some((src) => src.includes('posthog.com')), 'nothing from PostHog\'s CDN');
    // The local server has no such script: the load fails, which is reported, not a crash.
    await waitFor(async () => (await p.page.evaluate(() => a.status()[0].state)) === 'failed');
  }));
