// Fake gtag.js (Google Analytics 4) for tests and the demo page: it sends nothing. Like the
// real script it processes what is already in `window.dataLayer` (in order), then wraps
// `dataLayer.push` to see every later entry. `gtag()` pushes `arguments` objects: they are
// recorded as arrays, plain objects as they are.
//   window.__vendorCalls.gtag  [['consent', 'default', {...}], ['js', Date], ['config', 'G-X'], ...]
//   window.__vendorLoads.gtag  how many times this script ran
//   window.__vendorFail.gtag = true  makes every later push throw (a failing vendor)
(function () {
  fakeDataLayer('gtag');

  function fakeDataLayer(name) {
    var w = window;
    var calls = (w.__vendorCalls = w.__vendorCalls || {});
    var loads = (w.__vendorLoads = w.__vendorLoads || {});
    loads[name] = (loads[name] || 0) + 1;
    var log = (calls[name] = calls[name] || []);
    var dl = (w.dataLayer = w.dataLayer || []);
    var flag = '__fake_' + name;
    if (dl[flag]) return; // already wrapped
    dl[flag] = true;
    var record = function (entry) {
      log.push(Object.prototype.toString.call(entry) === '[object Arguments]' ? [].slice.call(entry) : entry);
    };
    for (var i = 0; i < dl.length; i++) record(dl[i]);
    var push = dl.push;
    dl.push = function () {
      if (w.__vendorFail && w.__vendorFail[name]) throw new Error(name + ' failed');
      for (var j = 0; j < arguments.length; j++) record(arguments[j]);
      return push.apply(dl, arguments);
    };
  }
})();
