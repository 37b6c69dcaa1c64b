// Compiled (never run) against the package entry's declarations (pkg/index.d.ts) by
// scripts/check-types.sh: `Analytics.load` gives the client in waiting, which has every method
// of the loaded client and awaits to it.

import {
  Analytics,
  type AnalyticsBrowser,
  type AnalyticsConfig,
  type ConsentPreferences,
  type DestinationStatus,
  type JsDestination,
  type RetryResult,
} from '../../pkg/index.js';

const config: AnalyticsConfig = {
  destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch' } }],
};

Analytics.registerDestination('logger', (): JsDestination => ({ track: (event) => console.log(event.event) }));

export const analytics: AnalyticsBrowser = Analytics.load(config);

// Before the load: the same calls, the same return types.
const id: string = analytics.track('Clicked', { n: 1 }, { messageId: 'x' });
const pageId: string = analytics.page({ path: '/x' });
analytics.identify('u1', { plan: 'pro' });
analytics.identify({ plan: 'pro' });
analytics.group('g1');
analytics.alias('u2');
analytics.reset();
const done: Promise<void> = analytics.setConsent({ measurement: true });
const prefs: ConsentPreferences = analytics.consent();
const status: DestinationStatus[] = analytics.status();
const retried: Promise<RetryResult> = analytics.retryDeadLetters();
const cleared: number = analytics.clearDeadLetters();
analytics.on('delivered', (payload) => console.log(payload.messageId));
analytics.addSourceMiddleware((event) => event);

// Awaiting gives the loaded client.
async function later(): Promise<void> {
  const loaded: Analytics = await analytics;
  const again: string = loaded.track('After');
  const ok: boolean = await loaded.testDestination('relay');
  console.log(again, ok, loaded instanceof Object);
  const failed = await analytics.catch((e: unknown) => String(e));
  console.log(failed);
}

// @ts-expect-error: track needs an event name
analytics.track();
// @ts-expect-error: an unknown purpose
analytics.setConsent({ analytics: true });
// @ts-expect-error: no init() in the entry
import('../../pkg/index.js').then((m) => m.default());

console.log(id, pageId, done, prefs, status, retried, cleared, later);
