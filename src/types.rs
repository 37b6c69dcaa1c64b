//! TypeScript declarations for the shapes the JavaScript API takes and returns (SPEC sections
//! 2 to 8). They land in `pkg/consent_analytics.d.ts`; `src/api.rs` refers to them by name with
//! `unchecked_param_type` / `unchecked_return_type`. Types only: nothing here reaches the wasm.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A consent purpose (c15t's names). `necessary` is always granted. */
export type Purpose = 'necessary' | 'functionality' | 'experience' | 'measurement' | 'marketing';

/** The consent state: every purpose, `necessary` always true. */
export interface ConsentPreferences {
  necessary: true;
  functionality: boolean;
  experience: boolean;
  measurement: boolean;
  marketing: boolean;
}

/** A change to the consent (`setConsent`, `config.consent`): the purposes it names. */
export type ConsentUpdate = Partial<Record<Purpose, boolean>>;

/** Event properties or traits: a plain object JSON can carry (`null` as an argument is `{}`). */
export type Properties = Record<string, unknown>;

/** A script element to inject (c15t-compatible); exactly one of `src` and `textContent`. */
export type ScriptDescriptor = {
  /** Element id; an element with this id already in the document is not injected again. */
  id: string;
  async?: boolean;
  defer?: boolean;
  nonce?: string;
  integrity?: string;
  crossOrigin?: 'anonymous' | 'use-credentials';
  attributes?: Record<string, string>;
  target?: 'head' | 'body';
  persistAfterConsentRevoked?: boolean;
} & ({ src: string; textContent?: never } | { textContent: string; src?: never });

/** `settings` of a `relay` destination (SPEC section 6). */
export interface RelaySettings {
  endpoint: string;
  headers?: Record<string, string>;
  writeKey?: string;
  batchSize?: number;
  maxBatchBytes?: number;
  flushIntervalMs?: number;
  beacon?: boolean;
}

/** `settings` of a `posthog` destination. */
export interface PostHogSettings {
  apiKey: string;
  apiHost?: string;
  /** Overrides the vendor script URL. */
  scriptSrc?: string;
}

/** `settings` of a `meta-pixel` destination. */
export interface MetaPixelSettings {
  pixelId: string;
  /** Overrides the vendor script URL. */
  scriptSrc?: string;
}

/** `settings` of a `ga4` destination. */
export interface Ga4Settings {
  measurementId: string;
  /** Overrides the vendor script URL. */
  scriptSrc?: string;
}

/** `settings` of a `gtm` destination. */
export interface GtmSettings {
  containerId: string;
  /** Overrides the vendor script URL. */
  scriptSrc?: string;
}

/** `settings` of a `script` destination. */
export interface ScriptSettings {
  scripts: ScriptDescriptor[];
}

/** What every destination entry may carry besides `type` and `settings`. */
export interface DestinationEntryBase {
  /** Unique id, defaults to the type. */
  id?: string;
  /** `false` leaves the entry out. Default true. */
  enabled?: boolean;
  /** Purposes that must all be granted; default per type, `[]` means only `necessary`. */
  requiredConsent?: Purpose[];
}

/** A `relay` destination entry. */
export interface RelayDestinationConfig extends DestinationEntryBase { type: 'relay'; settings: RelaySettings }
/** A `posthog` destination entry. */
export interface PostHogDestinationConfig extends DestinationEntryBase { type: 'posthog'; settings: PostHogSettings }
/** A `meta-pixel` destination entry. */
export interface MetaPixelDestinationConfig extends DestinationEntryBase { type: 'meta-pixel'; settings: MetaPixelSettings }
/** A `ga4` destination entry. */
export interface Ga4DestinationConfig extends DestinationEntryBase { type: 'ga4'; settings: Ga4Settings }
/** A `gtm` destination entry. */
export interface GtmDestinationConfig extends DestinationEntryBase { type: 'gtm'; settings: GtmSettings }
/** A `script` destination entry. */
export interface ScriptDestinationConfig extends DestinationEntryBase { type: 'script'; settings: ScriptSettings }
/** An entry of a type registered with `Analytics.registerDestination`. */
export interface CustomDestinationConfig extends DestinationEntryBase { type: string; settings?: Record<string, unknown> }

/**
 * One entry of `config.destinations`. TypeScript cannot take the built-in names out of `string`,
 * so an untyped built-in entry also matches `CustomDestinationConfig`: write
 * `satisfies RelayDestinationConfig` (or annotate it) to have its settings checked. For the
 * same reason this is not a discriminated union: `d.type === 'relay'` does not narrow `d`.
 */
export type DestinationConfig =
  | RelayDestinationConfig
  | PostHogDestinationConfig
  | MetaPixelDestinationConfig
  | Ga4DestinationConfig
  | GtmDestinationConfig
  | ScriptDestinationConfig
  | CustomDestinationConfig;

/** `config.loading`. */
export interface LoadingConfig {
  strategy?: 'lazy' | 'eager';
  bufferLimit?: number;
  maxRetries?: number;
  timeoutMs?: number;
}

/** `config.retry`. */
export interface RetryConfig {
  maxRetries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  multiplier?: number;
  jitter?: boolean;
}

/** `config.circuitBreaker`. */
export interface CircuitBreakerConfig {
  failureThreshold?: number;
  recoveryTimeoutMs?: number;
  halfOpenSuccesses?: number;
}

/** `config.deadLetter`. */
export interface DeadLetterConfig {
  storageKey?: string;
  maxSize?: number;
  ttlMs?: number;
}

/** `Analytics.load(config)`. Unknown keys are an error naming the key. */
export interface AnalyticsConfig {
  consent?: ConsentUpdate;
  honorGpc?: boolean;
  destinations?: DestinationConfig[];
  scriptsUrl?: string;
  scriptsCacheTtlMs?: number;
  loading?: LoadingConfig;
  retry?: RetryConfig;
  circuitBreaker?: CircuitBreakerConfig;
  deadLetter?: DeadLetterConfig;
  purgeOnRevoke?: boolean;
  nonce?: string;
  storagePrefix?: string;
  debug?: boolean;
}

/**
 * The last argument of `track`, `page`, `identify`, `group` and `alias`; `null` (for it or
 * one of the first four keys) is as absent.
 */
export interface EventOptions {
  messageId?: string | null;
  /** When it happened: a Date or a date string (sent as ISO-8601 UTC with milliseconds). */
  timestamp?: string | Date | null;
  anonymousId?: string | null;
  userId?: string | null;
  integrations?: Record<string, unknown>;
  context?: Record<string, unknown>;
}

/** The type of an event. */
export type EventType = 'track' | 'page' | 'identify' | 'group' | 'alias' | 'consent';

/** `context.page`. */
export interface PageContext {
  path: string;
  referrer: string;
  search: string;
  title: string;
  url: string;
}

/** `event.context`. */
export interface EventContext {
  page: PageContext;
  userAgent: string;
  locale: string;
  library: { name: string; version: string };
  /** The consent in force when the event was captured. */
  consent: { categoryPreferences: ConsentPreferences };
  [key: string]: unknown;
}

/** The fields every event has (Segment spec names). */
export interface EventBase {
  type: EventType;
  messageId: string;
  /** ISO-8601, milliseconds, UTC. */
  timestamp: string;
  anonymousId: string;
  userId: string | null;
  context: EventContext;
  integrations: Record<string, unknown>;
}

/** A `track` event. */
export interface TrackEvent extends EventBase { type: 'track'; event: string; properties: Properties }
/** A `page` event. */
export interface PageEvent extends EventBase {
  type: 'page';
  name?: string;
  /** The page fields (defaulted from the document) and, for a named page, `name`. */
  properties: Properties & Partial<PageContext> & { name?: string };
}
/** An `identify` event. */
export interface IdentifyEvent extends EventBase { type: 'identify'; traits: Properties }
/** A `group` event. */
export interface GroupEvent extends EventBase { type: 'group'; groupId: string; traits: Properties }
/** An `alias` event. */
export interface AliasEvent extends EventBase { type: 'alias'; userId: string; previousId: string }
/** A `consent` event, sent when the consent changes. */
export interface ConsentEvent extends EventBase {
  type: 'consent';
  consent: { categoryPreferences: ConsentPreferences };
}

/** An event as destinations, middleware, listeners and the dead-letter queue see it. */
export type AnalyticsEvent = TrackEvent | PageEvent | IdentifyEvent | GroupEvent | AliasEvent | ConsentEvent;

/** How a delivery failed. Validation and auth errors are not retried. */
export type DeliveryErrorKind =
  | 'rate_limit'
  | 'server'
  | 'auth'
  | 'validation'
  | 'network'
  | 'timeout'
  | 'script_load'
  | 'unknown';

/** A delivery failure. */
export interface DeliveryErrorInfo {
  kind: DeliveryErrorKind;
  message: string;
  /** The HTTP status, for HTTP failures. */
  status?: number;
}

/** A destination's load state. */
export type DestinationState = 'registered' | 'loading' | 'loaded' | 'failed' | 'blocked' | 'unloaded';

/** A destination's circuit breaker state. */
export type CircuitState = 'closed' | 'open' | 'half_open';

/** One entry of `analytics.status()`. */
export interface DestinationStatus {
  id: string;
  type: string;
  state: DestinationState;
  circuit: CircuitState;
  delivered: number;
  failed: number;
  deadLettered: number;
  /** Events a JavaScript destination skipped (its `onBeforeEvent` returned null). */
  skipped: number;
  /** Events waiting for this destination. */
  pending: number;
  lastError: DeliveryErrorInfo | null;
}

/** An entry of the dead-letter queue. */
export interface DeadLetter {
  id: string;
  /** The destination id. */
  destination: string;
  event: AnalyticsEvent;
  error: DeliveryErrorInfo;
  attempts: number;
  /** Epoch milliseconds. */
  firstFailedAt: number;
  /** Epoch milliseconds. */
  lastFailedAt: number;
}

/** What `retryDeadLetters` resolves to. */
export interface RetryResult {
  retried: number;
  succeeded: number;
  failed: number;
}

/** The second argument of a destination's event hooks. */
export interface DeliveryContext {
  /** The destination id. */
  destination: string;
}

/** A value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * A JavaScript destination (SPEC section 4). Every method is optional and may return a
 * promise; a throw or a rejection is a delivery failure for this destination only.
 */
export interface JsDestination {
  name?: string;
  version?: string;
  /** Script descriptors to inject before `initialize`. */
  scripts?(settings: Record<string, unknown>, consent: ConsentPreferences): MaybePromise<ScriptDescriptor[] | null | undefined>;
  initialize?(settings: Record<string, unknown>): MaybePromise<unknown>;
  track?(event: TrackEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  page?(event: PageEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  identify?(event: IdentifyEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  group?(event: GroupEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  alias?(event: AliasEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  consent?(event: ConsentEvent, ctx: DeliveryContext): MaybePromise<unknown>;
  /** Returns the event, a changed copy, or `null` to skip it for this destination. */
  onBeforeEvent?(event: AnalyticsEvent): MaybePromise<AnalyticsEvent | null | undefined>;
  onAfterEvent?(event: AnalyticsEvent, result: unknown): MaybePromise<unknown>;
  onError?(error: unknown, event: AnalyticsEvent): MaybePromise<unknown>;
  /** Whether the destination can reach its backend. */
  testConnection?(): MaybePromise<boolean>;
  destroy?(): MaybePromise<unknown>;
}

/**
 * Makes a destination from its entry's `settings` (`Analytics.registerDestination`), synchronously:
 * a factory returning a Promise fails `Analytics.load`.
 */
export type DestinationFactory = (settings: Record<string, unknown>) => JsDestination;

/**
 * Runs on every event before routing: returns the event, a changed event, or `null` to drop
 * it for every destination. A throw drops the event and emits `error`.
 */
export type SourceMiddleware = (event: AnalyticsEvent) => MaybePromise<AnalyticsEvent | null | undefined>;

/** What each `analytics.on(name, cb)` listener receives. */
export interface AnalyticsEventMap {
  delivered: { destination: string; messageId: string; event: AnalyticsEvent };
  /** `destination` is absent for failures outside a destination (a source middleware). */
  error: { destination?: string; error: DeliveryErrorInfo };
  'dead-letter': DeadLetter;
  consent: ConsentPreferences;
  loaded: { destination: string };
}

/** The names `analytics.on` accepts. */
export type AnalyticsEventName = keyof AnalyticsEventMap;

/** Declarations merged into the `Analytics` class: typed listeners and the short call forms. */
export interface Analytics {
  /** Listens to `'delivered'`, `'error'`, `'dead-letter'`, `'consent'` or `'loaded'`. */
  on<K extends AnalyticsEventName>(name: K, cb: (payload: AnalyticsEventMap[K]) => void): void;
  /** Removes a listener added with `on`. */
  off<K extends AnalyticsEventName>(name: K, cb: (payload: AnalyticsEventMap[K]) => void): void;
  page(properties?: Properties | null, options?: EventOptions | null): string;
  identify(traits?: Properties | null, options?: EventOptions | null): string;
}
"#;
