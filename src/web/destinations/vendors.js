// The vendors' standard queue stubs (as their own snippets define them, without the part that
// inserts a script element), a call helper and the event mapping of vendors.rs. Shipped as
// module code, not inline script: CSP-safe.
const w = globalThis;

// Sets up the stub of vendor `v` (0 PostHog, 1 Meta, 2 Google) unless it already exists.
export function stub(v) {
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
}

// `window[t][m](...a)`, or `window[t](...a)` when `m` is empty.
export function vcall(t, m, a) {
  const o = w[t];
  return m ? o[m].apply(o, a) : o.apply(w, a);
}

// Maps one event `e` of type `kind` to vendor `v`'s call (0 PostHog, 1 Meta Pixel, 2 GA4,
// 3 GTM; the table in vendors.rs); `standard`: a Meta standard event name. Objects handed over
// are shallow copies. Returns undefined, or [the function's name, what it threw].
export function vendorSend(v, kind, e, standard) {
  let what = '';
  try {
    const copy = (k) => {
      const x = e[k];
      return Object.assign({}, x !== null && typeof x == 'object' ? x : {});
    };
    const str = (x) => typeof x == 'string';
    const ph = (m, ...a) => ((what = m), w.posthog[m](...a));
    const fbq = (...a) => ((what = 'fbq'), w.fbq(...a));
    const gtag = (...a) => ((what = 'gtag'), w.gtag(...a));
    const name = e.event;
    if (v == 0) {
      if (kind == 'track') ph('capture', name, copy('properties'));
      else if (kind == 'page') ph('capture', '$pageview', copy('properties'));
      else if (kind == 'identify') str(e.userId) && ph('identify', e.userId, copy('traits'));
      else if (kind == 'group') ph('group', 'company', e.groupId, copy('traits'));
      else if (kind == 'alias') ph('alias', e.userId);
    } else if (v == 1) {
      if (kind == 'page') fbq('track', 'PageView');
      else if (kind == 'track') fbq(standard ? 'track' : 'trackCustom', name, copy('properties'));
    } else if (v == 2) {
      if (kind == 'track') gtag('event', name, copy('properties'));
      else if (kind == 'page') {
        const p = e.properties || {};
        gtag('event', 'page_view', { page_location: p.url, page_path: p.path, page_title: p.title });
      } else if (kind == 'identify') str(e.userId) && gtag('set', { user_id: e.userId });
    } else if (kind == 'track' || kind == 'page') {
      // The event name wins over a property called `event`.
      const n = kind == 'page' ? 'page_view' : name;
      what = 'push';
      w.dataLayer.push(Object.assign({ event: n }, copy('properties'), { event: n }));
    }
  } catch (err) {
    return [what, err];
  }
}
