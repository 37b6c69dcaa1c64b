/// <reference lib="esnext.disposable" />
// The package entry: `import { Analytics } from 'consent-analytics'`.

import type {
    Analytics as LoadedAnalytics,
    AnalyticsConfig,
    DestinationFactory,
} from './consent_analytics.js';

export type {
    AliasEvent,
    AnalyticsConfig,
    AnalyticsEvent,
    AnalyticsEventMap,
    AnalyticsEventName,
    CircuitBreakerConfig,
    CircuitState,
    ConsentEvent,
    ConsentPreferences,
    ConsentUpdate,
    CustomDestinationConfig,
    DeadLetter,
    DeadLetterConfig,
    DeliveryContext,
    DeliveryErrorInfo,
    DeliveryErrorKind,
    DestinationConfig,
    DestinationEntryBase,
    DestinationFactory,
    DestinationState,
    DestinationStatus,
    EventBase,
    EventContext,
    EventOptions,
    EventType,
    Ga4DestinationConfig,
    Ga4Settings,
    GroupEvent,
    GtmDestinationConfig,
    GtmSettings,
    IdentifyEvent,
    JsDestination,
    LoadingConfig,
    MaybePromise,
    MetaPixelDestinationConfig,
    MetaPixelSettings,
    PageContext,
    PageEvent,
    PostHogDestinationConfig,
    PostHogSettings,
    Properties,
    Purpose,
    RelayDestinationConfig,
    RelaySettings,
    RetryConfig,
    RetryResult,
    ScriptDescriptor,
    ScriptDestinationConfig,
    ScriptSettings,
    SourceMiddleware,
    TrackEvent,
} from './consent_analytics.js';

/** A loaded analytics client: what awaiting `Analytics.load(config)` gives. */
export type Analytics = LoadedAnalytics;

/** The methods of a loaded client, all of which the client in waiting has too. */
export type AnalyticsMethods = Pick<
    LoadedAnalytics,
    | 'addSourceMiddleware'
    | 'alias'
    | 'clearDeadLetters'
    | 'consent'
    | 'deadLetters'
    | 'flush'
    | 'free'
    | 'group'
    | 'identify'
    | 'off'
    | 'on'
    | 'page'
    | 'preload'
    | 'reset'
    | 'retryDeadLetters'
    | 'retryDestination'
    | 'setConsent'
    | 'status'
    | 'testDestination'
    | 'track'
    | 'unloadDestination'
    | typeof Symbol.dispose
>;

/**
 * What `Analytics.load(config)` returns at once: the client while it loads. Every method can be
 * called now: event calls return their messageId and are recorded with the time and page of
 * the call; calls returning a Promise settle once applied; everything is applied in call
 * order once the client has loaded, its arguments checked then (a bad call is dropped with a
 * console error naming the argument). Before the load, `consent()` is `necessary` only,
 * `status()` and `deadLetters()` are empty and `clearDeadLetters()` returns 0. Awaiting it
 * gives the loaded client, or rejects with the Error naming the bad config field. Outside a
 * browser it is inert: every method does nothing, and awaiting it gives an inert client.
 */
export interface AnalyticsBrowser extends AnalyticsMethods, PromiseLike<Analytics> {
    /** As `Promise.prototype.catch` on the load. */
    catch<T = never>(onFailed?: ((reason: unknown) => T | PromiseLike<T>) | null): Promise<Analytics | T>;
    /** As `Promise.prototype.finally` on the load. */
    finally(onSettled?: (() => void) | null): Promise<Analytics>;
}

/** The package's `Analytics`: its two static calls; `x instanceof Analytics` holds for a loaded client. */
export declare const Analytics: {
    /**
     * Returns at once the client in waiting (`AnalyticsBrowser`) and loads the WebAssembly
     * module and then the client with `config` (validated: a bad field rejects the await).
     */
    load(config?: AnalyticsConfig): AnalyticsBrowser;
    /**
     * Adds a JavaScript destination type; `factory(settings)` returns the destination object.
     * Works before the WebAssembly module has loaded (the registration is applied first).
     */
    registerDestination(kind: string, factory: DestinationFactory): void;
    [Symbol.hasInstance](value: unknown): value is LoadedAnalytics;
};
