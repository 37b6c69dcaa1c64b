// Event building in Chromium: what a rejected call leaves behind (nothing), events changed by
// source middleware validated like new ones, options.timestamp, userId before identify, and a
// revocation reaching a JS destination ahead of the events kept for it (purgeOnRevoke: false),
// context.page (options.context.page merged; a page event's own page fields) and page names.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, withServer, openPage, waitFor } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * Loads the package with a JS destination `cap` (no consent needed) recording every event it
 * receives in window.got, and `window.a = await Analytics.load(...)`; window.errors collects
 * the messages of 'error' events.
 */
async function boot(p) {
  await p.page.evaluate(async () => {
    const m = await import('/pkg/consent_analytics.js');
    await m.default();
    window.got = [];
    window.errors = [];
    const record = (e) => {
      window.got.push(e);
    };
    m.Analytics.registerDestination('cap', () => ({
      track: record, page: record, identify: record, group: record, alias: record,
    }));
    window.a = await m.Analytics.load({ destinations: [{ type: 'cap', requiredConsent: [] }] });
    window.a.on('error', (e) => window.errors.push(e.error.message));
  });
}

/** Runs `fn(p)` on a fresh page of a fresh server. */
function run(fn) {
  return withServer(async (server) => {
    const p = await openPage(browser, `${server.url}/blank.html`);
    try {
      await fn(p);
      assert.deepEqual(p.runtimeErrors(), []);
    } finally {
      await p.close();
    }
  });
}

/** Waits until `cap` received `n` events; returns them. */
async function received(p, n) {
  await waitFor(() => p.page.evaluate((n) => window.got.length >= n, n), { message: `${n} events` });
  return p.page.evaluate(() => window.got);
}

test('a rejected identify changes nothing: not the stored user, not the traits', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(() => a.identify('before', { ok: 1 }));
    const stored = () =>
      p.page.evaluate(() => [localStorage.getItem('consent-analytics:userId'), localStorage.getItem('consent-analytics:traits')]);
    assert.deepEqual(await stored(), ['before', '{"ok":1}']);
    const err = await p.page.evaluate(() => {
      try {
        a.identify('after', { big: 'x'.repeat(40000) });
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    });
    assert.match(err, /^TypeError: identify: event is \d+ bytes serialised, over the 32 KB limit$/);
    assert.deepEqual(await stored(), ['before', '{"ok":1}'], 'the identity is unchanged');
    // The next calls are not stuck on the refused traits.
    await p.page.evaluate(() => {
      a.track('Next');
      a.identify('third', { more: 2 });
    });
    const got = await received(p, 3);
    assert.deepEqual(
      got.map((e) => [e.type, e.userId, e.traits ?? null]),
      [
        ['identify', 'before', { ok: 1 }],
        ['track', 'before', null],
        // Another user: the traits start afresh (as analytics.js).
        ['identify', 'third', { more: 2 }],
      ],
    );
  }));

test('an event changed by source middleware is validated like a new one', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(() => {
      // Change i is applied to the event carrying i (dispatch is asynchronous).
      const changes = [
        (e) => { e.event = ''; },
        (e) => { e.event = 5; },
        (e) => { e.properties = [1]; },
        (e) => { delete e.properties; },
        (e) => { e.messageId = ''; },
        (e) => { e.timestamp = 'garbage'; },
        (e) => { delete e.anonymousId; },
        (e) => { e.userId = ''; },
        (e) => { e.groupId = ''; },
        (e) => { e.name = 7; },
        // A valid change goes through: the new messageId is the event's from then on, and a
        // Date timestamp is sent as ISO-8601.
        (e) => {
          e.messageId = 'mid-from-middleware';
          e.timestamp = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
        },
      ];
      a.addSourceMiddleware((e) => (changes[(e.properties ?? e.traits).i](e), e));
      for (let i = 0; i < 8; i++) a.track('Fine', { i });
      a.group('g-1', { i: 8 });
      a.page('Home', { i: 9 });
      a.track('Changed', { i: 10 });
    });
    await waitFor(() => p.page.evaluate(() => window.errors.length >= 10), { message: 'ten errors' });
    const errors = await p.page.evaluate(() => window.errors);
    const reason = (m) => m.replace('event from source middleware rejected: ', '');
    assert.deepEqual(errors.map(reason), [
      'event must be a non-empty string',
      'event must be a non-empty string',
      'properties must be a plain object',
      'properties must be a plain object',
      'messageId must be a non-empty string',
      'timestamp must be a Date or a date string (ISO-8601)',
      'anonymousId must be a non-empty string',
      'userId must be a non-empty string or null',
      'groupId must be a non-empty string',
      'name must be a string',
    ]);
    const got = await received(p, 1);
    assert.deepEqual(
      got.map((e) => [e.event, e.messageId, e.timestamp]),
      [['Changed', 'mid-from-middleware', '2024-01-02T03:04:05.006Z']],
      'only the valid event reached the destination',
    );
  }));

test('options.timestamp takes a Date or a date string, sent as ISO-8601 UTC; a bad one throws', () =>
  run(async (p) => {
    await boot(p);
    const thrown = await p.page.evaluate(() =>
      ['garbage', '', 12, {}].map((t) => {
        try {
          a.track('Bad', {}, { timestamp: t });
          return 'accepted';
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      }),
    );
    assert.deepEqual(thrown, Array(4).fill('TypeError: track: options.timestamp must be a Date or a date string (ISO-8601)'));
    await p.page.evaluate(() => {
      a.track('A', {}, { timestamp: '2020-01-01T01:00:00+01:00' });
      a.track('B', {}, { timestamp: new Date(Date.UTC(2021, 5, 6, 7, 8, 9, 10)) });
      a.track('C', {}, { timestamp: '2022-03-04T05:06:07Z' });
    });
    const got = await received(p, 3);
    assert.deepEqual(
      got.map((e) => [e.event, e.timestamp]),
      [
        ['A', '2020-01-01T00:00:00.000Z'],
        ['B', '2021-06-06T07:08:09.010Z'],
        ['C', '2022-03-04T05:06:07.000Z'],
      ],
    );
  }));

test('userId is null before identify, in the event and in its JSON', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(() => {
      a.addSourceMiddleware((e) => ((window.json = JSON.stringify(e)), e));
      a.track('Anonymous');
    });
    await waitFor(() => p.page.evaluate(() => window.json !== undefined), { message: 'the middleware ran' });
    const json = await p.page.evaluate(() => window.json);
    assert.equal(JSON.parse(json).userId, null);
    assert.ok(json.includes('"userId":null'));
    const [e] = await received(p, 1);
    assert.equal(e.userId, null);
  }));

test('options.context.page is merged over the page defaults key by key; other context keys replace', () =>
  run(async (p) => {
    await boot(p);
    const here = await p.page.evaluate(() => {
      a.track('Clicked', {}, {
        context: { page: { path: '/override' }, library: { name: 'mine' }, ip: '1.2.3.4', consent: { no: 1 } },
      });
      return { href: location.href, title: document.title };
    });
    const [e] = await received(p, 1);
    assert.deepEqual(e.context.page, {
      path: '/override',
      referrer: '',
      search: '',
      title: here.title,
      url: here.href,
    });
    assert.deepEqual(e.context.library, { name: 'mine' }, 'another key replaces');
    assert.equal(e.context.ip, '1.2.3.4');
    assert.deepEqual(Object.keys(e.context.consent), ['categoryPreferences'], 'consent stays the stamp');
  }));

test('page(): context.page takes the page fields of the properties, options.context.page wins; a name is a property too', () =>
  run(async (p) => {
    await boot(p);
    const here = await p.page.evaluate(() => {
      a.page('Virtual', { path: '/virtual', url: 'https://shop.example/virtual', title: 'V', section: 's' });
      a.page('Opt', { title: 'From props' }, { context: { page: { title: 'From options' } } });
      a.page('Home', { name: 'ignored' });
      a.page({ section: 'top' });
      return { href: location.href, title: document.title, path: location.pathname };
    });
    const got = await received(p, 4);
    const page = (o) => ({ path: here.path, referrer: '', search: '', title: here.title, url: here.href, ...o });
    assert.deepEqual(
      got.map((e) => [e.name, e.properties, e.context.page]),
      [
        [
          'Virtual',
          page({ path: '/virtual', url: 'https://shop.example/virtual', title: 'V', section: 's', name: 'Virtual' }),
          page({ path: '/virtual', url: 'https://shop.example/virtual', title: 'V' }),
        ],
        ['Opt', page({ title: 'From props', name: 'Opt' }), page({ title: 'From options' })],
        ['Home', page({ name: 'Home' }), page()],
        [undefined, page({ section: 'top' }), page()],
      ],
    );
  }));

test('two clients of one page: an identify or reset in one reaches the other', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      window.got2 = [];
      m.Analytics.registerDestination('cap2', () => ({ track: (e) => window.got2.push(e) }));
      window.b = await m.Analytics.load({ destinations: [{ type: 'cap2', requiredConsent: [] }] });
    });
    // Tracks in `b` after letting microtasks run; the identity its event carried.
    const seen = async () => {
      const n = await p.page.evaluate(async () => {
        await Promise.resolve();
        b.track('Look');
        return window.got2.length;
      });
      await waitFor(() => p.page.evaluate((n) => window.got2.length === n + 1, n), { message: 'b delivered' });
      return p.page.evaluate(() => ({ userId: window.got2.at(-1).userId, anonymousId: window.got2.at(-1).anonymousId }));
    };
    const anon = (await seen()).anonymousId;
    await p.page.evaluate(() => a.identify('user-1'));
    assert.deepEqual(await seen(), { userId: 'user-1', anonymousId: anon });
    await p.page.evaluate(() => a.reset());
    const after = await seen();
    assert.equal(after.userId, null);
    assert.notEqual(after.anonymousId, anon);
    assert.equal(after.anonymousId, await p.page.evaluate(() => localStorage.getItem('consent-analytics:anonymousId')));
  }));

test('purgeOnRevoke: false keeps events through a revocation, yet the revocation reaches the destination at once', () =>
  run(async (p) => {
    await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.log = [];
      window.threw = false;
      m.Analytics.registerDestination('mk', () => ({
        track(e) {
          if (!window.threw) {
            window.threw = true;
            throw new Error('backend down');
          }
          window.log.push(e.event);
        },
        consent(e) {
          window.log.push(`marketing ${e.consent.categoryPreferences.marketing}`);
        },
      }));
      window.a = await m.Analytics.load({
        consent: { marketing: true },
        purgeOnRevoke: false,
        retry: { baseDelayMs: 200, jitter: false },
        destinations: [{ type: 'mk', requiredConsent: ['marketing'] }],
      });
      a.track('Kept');
    });
    // The first delivery failed and waits for its retry; the visitor revokes before it.
    await waitFor(() => p.page.evaluate(() => window.threw), { message: 'first delivery failed' });
    await p.page.evaluate(() => a.setConsent({ marketing: false }));
    await waitFor(() => p.page.evaluate(() => window.log.includes('marketing false')), {
      message: 'the revocation delivered while the kept event waits',
    });
    await new Promise((r) => setTimeout(r, 600)); // three retry delays
    assert.deepEqual(await p.page.evaluate(() => window.log), ['marketing false'], 'Kept is not sent while revoked');
    assert.equal(await p.page.evaluate(() => a.status()[0].pending), 1);

    await p.page.evaluate(() => a.setConsent({ marketing: true }));
    await waitFor(() => p.page.evaluate(() => window.log.length >= 3), { message: 'kept event after the grant' });
    assert.deepEqual(await p.page.evaluate(() => window.log), ['marketing false', 'Kept', 'marketing true']);
  }));

test('identify naming another user starts from no traits; without a user id, or with the same one, traits merge', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(() => {
      a.identify('alice', { email: 'alice@example.com', plan: 'free' });
      a.identify('bob', { plan: 'pro' });
      a.identify({ vip: true });
      a.identify('bob', { seats: 3 });
    });
    const got = await received(p, 4);
    assert.deepEqual(
      got.map((e) => [e.userId, e.traits]),
      [
        ['alice', { email: 'alice@example.com', plan: 'free' }],
        ['bob', { plan: 'pro' }],
        ['bob', { plan: 'pro', vip: true }],
        ['bob', { plan: 'pro', vip: true, seats: 3 }],
      ],
    );
    assert.deepEqual(
      JSON.parse(await p.page.evaluate(() => localStorage.getItem('consent-analytics:traits'))),
      { plan: 'pro', vip: true, seats: 3 },
    );
  }));

test('a full localStorage that refuses only some values: the identity stays whole, for every client of the page', () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(async () => {
      const setItem = Storage.prototype.setItem;
      Storage.prototype.setItem = function (k, v) {
        if (String(v).length > 60) throw new DOMException('full', 'QuotaExceededError');
        return setItem.call(this, k, v);
      };
      a.identify('u1', { bio: 'x'.repeat(100) });
      a.track('After identify');
      const m = await import('/pkg/consent_analytics.js');
      window.b = await m.Analytics.load({ destinations: [{ type: 'cap', requiredConsent: [] }] });
      b.track('From b');
      b.identify({ more: 'y'.repeat(100) });
    });
    const got = await received(p, 4);
    assert.deepEqual(
      got.map((e) => [e.type, e.event ?? '', e.userId, Object.keys(e.traits ?? {}).sort().join()]),
      [
        ['identify', '', 'u1', 'bio'],
        ['track', 'After identify', 'u1', ''],
        ['track', 'From b', 'u1', ''],
        ['identify', '', 'u1', 'bio,more'],
      ],
    );
  }));

test('a purpose given as undefined is left as it is, in setConsent and in config.consent', () =>
  run(async (p) => {
    await boot(p);
    const r = await p.page.evaluate(async () => {
      a.setConsent({ marketing: true, measurement: undefined });
      const m = await import('/pkg/consent_analytics.js');
      const b = await m.Analytics.load({ consent: { measurement: true, marketing: undefined }, storagePrefix: 'other' });
      return [a.consent(), b.consent()];
    });
    assert.equal(r[0].marketing, true);
    assert.equal(r[0].measurement, false);
    assert.equal(r[1].measurement, true);
    assert.equal(r[1].marketing, false);
  }));

test('a revocation is applied at once, even while a source middleware still holds an earlier event', () =>
  run(async (p) => {
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.log = [];
      m.Analytics.registerDestination('mk', () => ({
        track: (e) => window.log.push(e.event),
        consent: (e) => window.log.push(`marketing ${e.consent.categoryPreferences.marketing}`),
      }));
      window.a = await m.Analytics.load({
        consent: { marketing: true },
        destinations: [{ type: 'mk', requiredConsent: ['marketing'] }],
      });
      a.track('Loads it');
      await new Promise((r) => setTimeout(r, 200));
      a.addSourceMiddleware((e) => new Promise((r) => setTimeout(() => r(e), 1500)));
      a.track('Held');
      await a.setConsent({ marketing: false });
      await new Promise((r) => setTimeout(r, 100));
      const now = a.status()[0].state;
      await new Promise((r) => setTimeout(r, 1800));
      return { now, log: window.log };
    });
    assert.equal(r.now, 'blocked', 'blocked at once, not when the middleware settles');
    assert.ok(!r.log.includes('Held'), 'the held event does not reach the revoked destination');
    assert.ok(r.log.includes('Loads it'));
  }));

test('a source middleware that never settles drops its event after loading.timeoutMs; later events flow', () =>
  run(async (p) => {
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.got = [];
      m.Analytics.registerDestination('cap2', () => ({ track: (e) => window.got.push(e.event) }));
      window.a = await m.Analytics.load({
        loading: { timeoutMs: 300 },
        destinations: [{ type: 'cap2', requiredConsent: [] }],
      });
      const errors = [];
      a.on('error', (e) => errors.push(e.error.message));
      a.addSourceMiddleware((e) => (e.event === 'Stuck' ? new Promise(() => {}) : e));
      a.track('Stuck');
      a.track('After');
      await new Promise((r) => setTimeout(r, 800));
      return { got: window.got, errors };
    });
    assert.deepEqual(r.got, ['After']);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0], /did not settle within loading\.timeoutMs/);
  }));

test('later source middlewares do not run on an event whose middleware timed out', () =>
  run(async (p) => {
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.got = [];
      m.Analytics.registerDestination('cap3', () => ({ track: (e) => window.got.push(e.event) }));
      const a = await m.Analytics.load({
        loading: { timeoutMs: 200 },
        destinations: [{ type: 'cap3', requiredConsent: [] }],
      });
      const seen = [];
      // Settles after the chain was given up.
      a.addSourceMiddleware((e) => (e.event === 'Slow' ? new Promise((r) => setTimeout(() => r(e), 500)) : e));
      a.addSourceMiddleware((e) => {
        seen.push(e.event);
        return e;
      });
      a.track('Slow');
      a.track('After');
      await new Promise((r) => setTimeout(r, 900));
      return { got: window.got, seen };
    });
    assert.deepEqual(r.got, ['After']);
    assert.deepEqual(r.seen, ['After'], 'the second middleware never saw the timed-out event');
  }));

test('in one task, an event before a grant is not sent to what the grant allows; one after it is', () =>
  run(async (p) => {
    const got = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      window.mk = [];
      m.Analytics.registerDestination('mk2', () => ({ track: (e) => window.mk.push(e.event) }));
      const a = await m.Analytics.load({ destinations: [{ type: 'mk2', requiredConsent: ['marketing'] }] });
      a.track('Before');
      a.setConsent({ marketing: true });
      a.track('After');
      a.setConsent({ marketing: false });
      a.track('Revoked');
      a.setConsent({ marketing: true });
      a.track('Again');
      await new Promise((r) => setTimeout(r, 300));
      return window.mk;
    });
    assert.deepEqual(got, ['Again']);
  }));

test('a slow onAfterEvent does not turn a delivered event into a failure', () =>
  run(async (p) => {
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      let calls = 0;
      m.Analytics.registerDestination('slowafter', () => ({
        track() {
          calls += 1;
        },
        onAfterEvent: () => new Promise((r) => setTimeout(r, 600)),
      }));
      const a = await m.Analytics.load({
        loading: { timeoutMs: 300 },
        retry: { maxRetries: 2, baseDelayMs: 10 },
        destinations: [{ type: 'slowafter', requiredConsent: [] }],
      });
      a.track('Order Completed');
      await new Promise((r) => setTimeout(r, 1200));
      const { delivered, failed, deadLettered } = a.status()[0];
      return { calls, delivered, failed, deadLettered };
    });
    assert.deepEqual(r, { calls: 1, delivered: 1, failed: 0, deadLettered: 0 });
  }));

test("a refused traits write does not leave the previous user's traits in storage", () =>
  run(async (p) => {
    await boot(p);
    await p.page.evaluate(() => {
      a.identify('alice', { email: 'alice@example.com' });
      const setItem = Storage.prototype.setItem;
      Storage.prototype.setItem = function (k, v) {
        if (String(v).length > 60) throw new DOMException('full', 'QuotaExceededError');
        return setItem.call(this, k, v);
      };
      a.identify('bob', { bio: 'x'.repeat(100) });
    });
    await received(p, 2);
    // The next page: what the storage holds must not pair bob with alice's traits.
    await p.page.reload();
    await boot(p);
    await p.page.evaluate(() => a.identify('bob', { plan: 'pro' }));
    const got = await received(p, 1);
    assert.deepEqual([got[0].userId, got[0].traits], ['bob', { plan: 'pro' }]);
  }));

test('a revocation made by a delivered listener stops the next delivery to that destination', () =>
  run(async (p) => {
    const r = await p.page.evaluate(async () => {
      const m = await import('/pkg/consent_analytics.js');
      await m.default();
      const got = [];
      m.Analytics.registerDestination('mk3', () => ({ track: (e) => got.push(e.event) }));
      const a = await m.Analytics.load({
        consent: { marketing: true },
        destinations: [{ type: 'mk3', requiredConsent: ['marketing'] }],
      });
      a.on('delivered', (d) => {
        if (d.event.event === 'First') a.setConsent({ marketing: false });
      });
      a.track('First');
      a.track('Second');
      a.track('Third');
      await new Promise((r) => setTimeout(r, 400));
      return { got, status: a.status()[0] };
    });
    assert.deepEqual(r.got, ['First']);
    assert.equal(r.status.state, 'blocked');
    assert.equal(r.status.pending, 0, 'the purge dropped the rest');
  }));
