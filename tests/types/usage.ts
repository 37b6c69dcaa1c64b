// Compiled (never run) against the generated pkg/consent_analytics.d.ts by
// scripts/check-types.sh: the declarations accept what the SPEC allows and reject typos.
// Each `@ts-expect-error` line must really be an error, or tsc fails.

import init, {
  Analytics,
  type AnalyticsConfig,
  type AnalyticsEvent,
  type ConsentPreferences,
  type DeadLetter,
  type DestinationConfig,
  type DestinationStatus,
  type Ga4DestinationConfig,
  type JsDestination,
  type RelayDestinationConfig,
  type RetryResult,
  type ScriptDestinationConfig,
} from '../../pkg/consent_analytics.js';

const destinations: DestinationConfig[] = [
  { type: 'relay', settings: { endpoint: '/v1/batch', writeKey: 'wk', batchSize: 20, beacon: true } },
  { type: 'posthog', settings: { apiKey: 'phc_x', apiHost: 'https://eu.i.posthog.com', scriptSrc: '/fake/posthog.js' } },
  { type: 'meta-pixel', id: 'pixel', settings: { pixelId: '123' }, requiredConsent: ['marketing'] },
  { type: 'ga4', settings: { measurementId: 'G-1' } },
  { type: 'gtm', settings: { containerId: 'GTM-1' }, enabled: false },
  {
    type: 'script',
    requiredConsent: ['experience'],
    settings: {
      scripts: [
        { id: 'chat', src: 'https://example.com/chat.js', integrity: 'sha384-x', crossOrigin: 'anonymous' },
        { id: 'inline', textContent: 'window.x = 1', target: 'body', attributes: { 'data-x': '1' } },
      ],
    },
  },
  { type: 'console-logger', settings: { level: 'info' } },
];

const config: AnalyticsConfig = {
  consent: { measurement: true },
  honorGpc: true,
  destinations,
  scriptsUrl: '/scripts',
  scriptsCacheTtlMs: 300000,
  loading: { strategy: 'lazy', bufferLimit: 1000, maxRetries: 3, timeoutMs: 10000 },
  retry: { maxRetries: 3, baseDelayMs: 1000, maxDelayMs: 30000, multiplier: 2, jitter: true },
  circuitBreaker: { failureThreshold: 5, recoveryTimeoutMs: 30000, halfOpenSuccesses: 3 },
  deadLetter: { storageKey: 'consent-analytics:dlq', maxSize: 1000, ttlMs: 86400000 },
  purgeOnRevoke: true,
  nonce: 'abc',
  storagePrefix: 'consent-analytics',
  debug: false,
};

const logger: JsDestination = {
  name: 'console-logger',
  scripts: (_settings, consent) => (consent.marketing ? [{ id: 'tag', src: '/tag.js' }] : []),
  initialize: async () => {},
  track: (event, ctx) => console.log(ctx.destination, event.event, event.properties),
  page: (event) => console.log(event.properties.path),
  alias: (event) => console.log(event.userId.toUpperCase(), event.previousId),
  consent: (event) => console.log(event.consent.categoryPreferences.marketing),
  onBeforeEvent: (event) => (event.type === 'track' && event.event === 'Secret' ? null : event),
  testConnection: () => Promise.resolve(true),
};

async function main(): Promise<void> {
  await init();
  Analytics.registerDestination('console-logger', () => logger);
  const analytics: Analytics = await Analytics.load(config);
  await Analytics.load();

  const id: string = analytics.track('Order Completed', { revenue: 42, currency: 'EUR' }, { messageId: 'm-1' });
  analytics.track('Signed Up');
  analytics.page();
  analytics.page('Home', { section: 'top' });
  analytics.page({ section: 'top' }, { timestamp: new Date().toISOString() });
  analytics.identify('user-1', { plan: 'pro' });
  analytics.identify({ plan: 'pro' });
  analytics.group('org-1', { seats: 3 });
  analytics.alias('user-1');
  // null where the runtime takes it as absent: properties, traits, options and the ids in them.
  analytics.track('No properties', null);
  analytics.track('Anonymous', {}, { userId: null, anonymousId: null, messageId: null, timestamp: null });
  analytics.track('No options', {}, null);
  analytics.page(null, null, null);
  analytics.page({ section: 'top' }, null);
  analytics.identify('user-1', null, null);
  analytics.identify({ plan: 'pro' }, null);
  analytics.group('org-1', null, null);
  analytics.alias('user-2', null, null);
  analytics.reset();

  await analytics.setConsent({ marketing: true });
  const prefs: ConsentPreferences = analytics.consent();
  const yes: true = prefs.necessary;
  await analytics.flush();
  await analytics.preload();

  const status: DestinationStatus[] = analytics.status();
  for (const s of status) {
    if (s.state === 'failed' && s.circuit === 'open' && s.lastError) console.log(s.lastError.kind, s.lastError.status);
  }
  const ok: boolean = await analytics.testDestination('relay');

  analytics.on('delivered', (d) => console.log(d.destination, d.messageId, d.event.type));
  analytics.on('error', (e) => console.log(e.destination ?? 'middleware', e.error.kind));
  analytics.on('dead-letter', (d) => console.log(d.attempts, d.event.messageId, d.error.message));
  analytics.on('consent', (c) => console.log(c.marketing));
  analytics.on('loaded', (l) => console.log(l.destination));
  const onLoaded = (l: { destination: string }) => console.log(l);
  analytics.on('loaded', onLoaded);
  analytics.off('loaded', onLoaded);

  analytics.addSourceMiddleware((event: AnalyticsEvent) => {
    if (event.type === 'identify') return { ...event, traits: {} };
    return event.context.consent.categoryPreferences.measurement ? event : null;
  });
  analytics.addSourceMiddleware(async (event) => event);

  const letters: DeadLetter[] = analytics.deadLetters();
  analytics.deadLetters('relay');
  const r: RetryResult = await analytics.retryDeadLetters('relay');
  const cleared: number = analytics.clearDeadLetters();
  await analytics.retryDestination('relay');
  await analytics.unloadDestination('relay');
  console.log(id, yes, ok, letters.length, r.retried + r.succeeded + r.failed, cleared);

  // Mistakes the declarations must catch.
  // @ts-expect-error unknown purpose
  await analytics.setConsent({ marketting: true });
  // @ts-expect-error necessary cannot be false in the state
  const bad: ConsentPreferences = { ...prefs, necessary: false };
  // @ts-expect-error event name must be a string
  analytics.track(42);
  // @ts-expect-error properties must be an object
  analytics.track('x', 'not an object');
  // @ts-expect-error unknown listener name
  analytics.on('deliverd', () => {});
  // @ts-expect-error a dead letter has no `foo`
  analytics.on('dead-letter', (d) => d.foo);
  // @ts-expect-error not a state
  if (status[0].state === 'ready') console.log(bad);
  // @ts-expect-error unknown config key
  await Analytics.load({ retyr: { maxRetries: 1 } });
  // @ts-expect-error wrong setting type
  await Analytics.load({ loading: { strategy: 'sometimes' } });
  // Built-in entries get their settings checked when annotated (an untyped entry could also be
  // a registered type: TypeScript cannot take the built-in names out of `string`).
  // @ts-expect-error a script needs src or textContent
  const noSource = { type: 'script', settings: { scripts: [{ id: 'x' }] } } satisfies ScriptDestinationConfig;
  // @ts-expect-error not both src and textContent
  const both = { type: 'script', settings: { scripts: [{ id: 'x', src: '/a.js', textContent: 'a' }] } } satisfies ScriptDestinationConfig;
  // @ts-expect-error the relay needs an endpoint
  const noEndpoint = { type: 'relay', settings: { batchSize: 5 } } satisfies RelayDestinationConfig;
  // @ts-expect-error a misspelt setting
  const typo = { type: 'ga4', settings: { measurementID: 'G-1' } } satisfies Ga4DestinationConfig;
  // @ts-expect-error requiredConsent lists purposes
  const badPurpose: DestinationConfig = { type: 'ga4', settings: { measurementId: 'G-1' }, requiredConsent: ['ads'] };
  console.log(noSource, both, noEndpoint, typo, badPurpose);
}

void main();
