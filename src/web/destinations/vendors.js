// The vendors' standard queue stubs (as their own snippets define them, without the part that
// inserts a script element), their init calls and the event mapping of vendors.rs. Shipped as
// module code, not inline script: CSP-safe. Vendor `v`: 0 PostHog, 1 Meta Pixel, 2 GA4, 3 GTM.
// A vendor function that throws is a failure: the helpers catch it and return
// '<function> threw: <message>' (nothing is returned on success).
const w = globalThis;

// A thrown value's message, as the wasm's error_message reads it.
const message = (e) => {
  if (typeof e == 'string') return e;
  try {
    const m = e.message;
    if (typeof m == 'string') return m;
  } catch (_) {}
  try {
    return String(e);
  } catch (_) {
    return '';
  }
};

// Runs `f(call)`, where `call(what, fn, ...args)` notes `what` and calls `fn`; returns
// undefined, or '<what> threw: <message>'.
const attempt = (f) => {
  let what = '';
  try {
    f((name, fn, ...a) => ((what = name), fn.apply(w, a)));
  } catch (e) {
    return what + ' threw: ' + message(e);
  }
};

// Sets up the stub of vendor `v` unless it already exists.
const stub = (v) => {
  if (v == 0) {
    if (!w.posthog) {
      const p = (w.posthog = []);
      p._i = [];
      p.__SV = 1;
      p.init = function () {
        p._i.push([].slice.call(arguments));
      };
      'capture identify alias group reset register opt_in_capturing opt_out_capturing'.split(' ').forEach(function (m) {
        p[m] = function () {
          p.push([m].concat([].slice.call(arguments)));
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

// The calls of a consent change: `on` whether the vendor's switch purpose is granted (PostHog,
// Meta), `cm` the Consent Mode state as 'type=granted&...' (Google tags; 'default' or 'update').
const consent = (call, v, on, cm, mode) => {
  if (v == 0) {
    const m = on ? 'opt_in_capturing' : 'opt_out_capturing';
    call(m, () => w.posthog[m]());
  } else if (v == 1) call('fbq', w.fbq, 'consent', on ? 'grant' : 'revoke');
  else call('gtag', w.gtag, 'consent', mode, Object.fromEntries(new URLSearchParams(cm)));
};

// Queues vendor `v`'s init calls into its stub for account `id` (PostHog: at
// `host`): `on` and `cm` as for a consent change.
const init = (v, id, host, on, cm) =>
    attempt((call) => {
      if (v == 0) {
        const cfg = { api_host: host, capture_pageview: false };
        if (!on) cfg.opt_out_capturing_by_default = true;
        call('init', () => w.posthog.init(id, cfg));
      } else if (v == 1) {
        if (!on) consent(call, v, on);
        call('fbq', w.fbq, 'init', id);
      } else {
        consent(call, v, on, cm, 'default');
        if (v == 3) call('push', () => w.dataLayer.push({ 'gtm.start': Date.now(), event: 'gtm.js' }));
        else {
          call('gtag', w.gtag, 'js', new Date());
          call('gtag', w.gtag, 'config', id, { send_page_view: false });
        }
      }
    });


// Maps one event `e` of type `kind` to vendor `v`'s call (the table in vendors.rs). `flag`: for
// a track, whether the name is a Meta standard event; for a consent change, `on` (with `cm`).
// Objects handed over are shallow copies. Kind 'init' sets up the stub and queues the init
// calls for account `e` (PostHog: at `host`).
export function vendorSend(v, kind, e, flag, cm, host) {
  if (kind == 'init') return attempt((call) => call('vendor stub', stub, v < 3 ? v : 2)) || init(v, e, host, flag, cm);
  return attempt((call) => {
    const copy = (k) => {
      const x = e[k];
      return Object.assign({}, x !== null && typeof x == 'object' ? x : {});
    };
    const str = (x) => typeof x == 'string';
    const ph = (m, ...a) => call(m, () => w.posthog[m](...a));
    const fbq = (...a) => call('fbq', w.fbq, ...a);
    const gtag = (...a) => call('gtag', w.gtag, ...a);
    const name = e.event;
    if (kind == 'consent') consent(call, v, flag, cm, 'update');
    else if (v == 0) {
      if (kind == 'track') ph('capture', name, copy('properties'));
      else if (kind == 'page') ph('capture', '$pageview', copy('properties'));
      else if (kind == 'identify') str(e.userId) && ph('identify', e.userId, copy('traits'));
      else if (kind == 'group') ph('group', 'company', e.groupId, copy('traits'));
      else if (kind == 'alias') ph('alias', e.userId);
    } else if (v == 1) {
      if (kind == 'page') fbq('track', 'PageView');
      else if (kind == 'track') fbq(flag ? 'track' : 'trackCustom', name, copy('properties'));
    } else if (v == 2) {
      if (kind == 'track') gtag('event', name, copy('properties'));
      else if (kind == 'page') {
        const p = e.properties || {};
        gtag('event', 'page_view', { page_location: p.url, page_path: p.path, page_title: p.title });
      } else if (kind == 'identify') str(e.userId) && gtag('set', { user_id: e.userId });
    } else if (kind == 'track' || kind == 'page') {
      // The event name wins over a property called `event`.
      const n = kind == 'page' ? 'page_view' : name;
      call('push', () => w.dataLayer.push(Object.assign({ event: n }, copy('properties'), { event: n })));
    }
  });
}
