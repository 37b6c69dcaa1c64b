// Fake Meta Pixel (fbevents.js) for tests and the demo page: it sends nothing. Like the real
// script it installs `fbq.callMethod` on the `window.fbq` stub and replays `fbq.queue` (in order),
// so every call, queued or later, is recorded once as an array of its arguments.
//   window.__vendorCalls.fbq  [['init', '123'], ['track', 'Purchase', {...}], ...]
//   window.__vendorLoads.fbq  how many times this script ran
//   window.__vendorFail.fbq = true  makes every later call throw (a failing vendor)
(function () {
  var w = window;
  var calls = (w.__vendorCalls = w.__vendorCalls || {});
  var loads = (w.__vendorLoads = w.__vendorLoads || {});
  loads.fbq = (loads.fbq || 0) + 1;
  var log = (calls.fbq = calls.fbq || []);
  var f = w.fbq;
  if (!f) {
    f = w.fbq = function () {
      f.callMethod ? f.callMethod.apply(f, arguments) : f.queue.push(arguments);
    };
    f.push = f;
    f.queue = [];
  }
  if (f.callMethod) return; // already took over
  var queued = f.queue || [];
  f.queue = [];
  f.callMethod = function () {
    if (w.__vendorFail && w.__vendorFail.fbq) throw new Error('fbq failed');
    log.push([].slice.call(arguments));
  };
  for (var i = 0; i < queued.length; i++) log.push([].slice.call(queued[i]));
})();
