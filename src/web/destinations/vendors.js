// The vendors' standard queue stubs (as their own snippets define them, without the part that
// inserts a script element), their init calls and the event mapping of vendors.rs. Shipped as
// module code, not inline script: CSP-safe.
const w = globalThis;

// The name of the vendor function being called, for the failure message.
let what;

// `window[t][m](...a)`, or `window[t](...a)` when `m` is empty.
const call = (t, m, ...a) => ((what = m || t), m ? w[t][m](...a) : w[t](...a));

// Sets up the stub of vendor `v` (0 PostHog, 1 Meta, 2 Google) unless it already exists.
const stub = (v) => {
  if (v == 0) {
    if (!w.posthog) {
      const p = (w.posthog = []);
      p._i = [];
      p.__SV = 1;
      p.init = (...a) => {
        p._i.push(a);
      };
      'capture identify alias group reset register opt_in_capturing opt_out_capturing'.split(' ').forEach((m) => {
        p[m] = (...a) => {
          p.push([m, ...a]);
        };
      });
    }
  } else if (v == 1) {
    if (!w.fbq) {
      const n = (w.fbq = function () {
        n.callMethod ? n.callMethod.apply(n, arguments) : n.queue.push(arguments);
      });
      if (!w._fbq) w._fbq = n;
      n.push = n;
      n.loaded = true;
      n.version = '2.0';
      n.queue = [];
    }
  } else {
    w.dataLayer = w.dataLayer || [];
    w.gtag =
      w.gtag ||
      function () {
        w.dataLayer.push(arguments);
      };
  }
};

// The Google Consent Mode v2 types, in the order of `CONSENT_MODE` in vendor_map.rs (its tests
// check this line).
const CONSENT_TYPES =
  'security_storage functionality_storage personalization_storage analytics_storage ad_storage ad_user_data ad_personalization';

// A thrown value's message, read as the wasm's `error_message` reads it.
const message = (e) => {
  try {
    return typeof e == 'string' ? e : typeof e.message == 'string' ? e.message : String(e);
  } catch (_) {
    try {
      return String(e);
    } catch (_) {
      return '';
    }
  }
};

// Makes vendor `v`'s calls (0 PostHog, 1 Meta Pixel, 2 GA4, 3 GTM) for one event `e` of type
// `kind` (0 track, 1 page, 2 identify, 3 group, 4 alias, 5 consent, 7 reset; the table in
// vendors.rs);
// objects handed over are shallow copies. `flag`: for a track,
// whether the name is a Meta standard event; for a consent change, whether the purpose the
// vendor's own switch follows is granted; `cm`: the Consent Mode state, bit i for
// CONSENT_TYPES[i] granted.
// Kind 6 sets up the stub and queues the init calls for account `e` (PostHog: at `host`),
// consent as for a change. Returns undefined, or '<function> threw: <message>'.
export function vendorSend(v, kind, e, flag, cm, host) {
  const copy = (k) => Object.assign({}, typeof e[k] == 'object' && e[k]);
  const str = (x) => typeof x == 'string';
  const name = e.event;
  const init = kind == 6;
  what = 'vendor stub';
  try {
    if (init) stub(v < 3 ? v : 2);
    if (init || kind == 5) {
      if (v == 0) {
        if (init) {
          const cfg = { api_host: host, capture_pageview: false };
          if (!flag) cfg.opt_out_capturing_by_default = true;
          call('posthog', 'init', e, cfg);
          // An opt-out PostHog stored on an earlier page must not outlast the consent given now.
          if (flag) call('posthog', 'opt_in_capturing', { captureEventName: null });
        } else call('posthog', flag ? 'opt_in_capturing' : 'opt_out_capturing');
      } else if (v == 1) {
        if (!(init && flag)) call('fbq', '', 'consent', flag ? 'grant' : 'revoke');
        if (init) call('fbq', '', 'init', e);
      } else {
        const state = CONSENT_TYPES.split(' ').map((k, i) => [k, (cm >> i) & 1 ? 'granted' : 'denied']);
        call('gtag', '', 'consent', init ? 'default' : 'update', Object.fromEntries(state));
        if (init && v == 3) call('dataLayer', 'push', { 'gtm.start': Date.now(), event: 'gtm.js' });
        else if (init) {
          call('gtag', '', 'js', new Date());
          call('gtag', '', 'config', e, { send_page_view: false });
        }
      }
    } else if (kind == 7) {
      if (v == 0) call('posthog', 'reset');
      else if (v == 2) call('gtag', '', 'set', { user_id: null });
    } else if (v == 0) {
      if (kind == 0) call('posthog', 'capture', name, copy('properties'));
      else if (kind == 1) call('posthog', 'capture', '$pageview', copy('properties'));
      else if (kind == 2) str(e.userId) && call('posthog', 'identify', e.userId, copy('traits'));
      else if (kind == 3) call('posthog', 'group', 'company', e.groupId, copy('traits'));
      else if (kind == 4) call('posthog', 'alias', e.userId, e.previousId);
    } else if (v == 1) {
      if (kind == 1) call('fbq', '', 'track', 'PageView');
      else if (kind == 0) call('fbq', '', flag ? 'track' : 'trackCustom', name, copy('properties'));
    } else if (v == 2) {
      if (kind == 0) call('gtag', '', 'event', name, copy('properties'));
      else if (kind == 1) {
        const p = e.properties || {};
        const page = { page_location: p.url, page_path: p.path, page_title: p.title, page_referrer: p.referrer };
        call('gtag', '', 'event', 'page_view', Object.assign(copy('properties'), page));
      } else if (kind == 2) str(e.userId) && call('gtag', '', 'set', { user_id: e.userId });
    } else if (kind == 0 || kind == 1) {
      // The event name wins over a property called `event`.
      const n = kind == 1 ? 'page_view' : name;
      call('dataLayer', 'push', Object.assign({ event: n }, copy('properties'), { event: n }));
    }
  } catch (err) {
    return what + ' threw: ' + message(err);
  }
}
