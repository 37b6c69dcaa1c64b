// Fake PostHog (array.js) for tests and the demo page: it sends nothing. Like the real script it
// takes over the `window.posthog` stub, first replays what the stub queued (the init calls in
// `posthog._i`, then the `[method, ...args]` entries, in order), then records every later call.
//   window.__vendorCalls.posthog  [['init', apiKey, config], ['capture', 'Signup', {...}], ...]
//   window.__vendorLoads.posthog  how many times this script ran
//   window.__vendorFail.posthog = true  makes every later call throw (a failing vendor)
(function () {
  var w = window;
  var calls = (w.__vendorCalls = w.__vendorCalls || {});
  var loads = (w.__vendorLoads = w.__vendorLoads || {});
  loads.posthog = (loads.posthog || 0) + 1;
  var log = (calls.posthog = calls.posthog || []);
  var stub = w.posthog;
  if (stub && stub.__fake) return; // already took over: the calls go to the recorder
  var methods = [
    'init', 'capture', 'identify', 'alias', 'group', 'reset', 'register',
    'opt_in_capturing', 'opt_out_capturing',
  ];
  var recorder = { __fake: true };
  methods.forEach(function (m) {
    recorder[m] = function () {
      if (w.__vendorFail && w.__vendorFail.posthog) throw new Error('posthog.' + m + ' failed');
      log.push([m].concat([].slice.call(arguments)));
    };
  });
  var inits = (stub && stub._i) || [];
  var queued = Array.isArray(stub) ? stub.slice() : [];
  w.posthog = recorder;
  inits.forEach(function (args) {
    log.push(['init'].concat(args));
  });
  queued.forEach(function (entry) {
    log.push(entry.slice());
  });
})();
