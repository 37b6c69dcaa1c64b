// End-to-end test of the `--target bundler` package (pkg-bundler/) as a page author uses it: a
// project with the package in node_modules, an entry that does `import { Analytics } from
// 'consent-analytics'`, built by webpack 5 in production mode (its WebAssembly ES module
// integration, `experiments.asyncWebAssembly`), then run in Chromium against the dev server:
// config errors, consent-gated vendor injection through the package's JS snippets, a registered
// JS destination and relay delivery to the sink.
//
//   npm run build:bundler && node --test tests/e2e/bundler.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, withServer, openPage, sinkEvents, waitFor } from './harness.mjs';
import { buildWithWebpack } from './webpack.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PKG = path.join(ROOT, 'pkg-bundler');

const ENTRY = `import { Analytics } from 'consent-analytics';
window.Analytics = Analytics;
window.seen = [];
Analytics.registerDestination('collector', () => ({
  track(event) { window.seen.push(event.event); },
}));
window.ready = true;
`;

const PAGE = `<!doctype html><meta charset="utf-8"><title>bundled</title>
<script src="main.js"></script>
`;

let project;
let bundleDir;
let browser;

before(async () => {
  await fs.access(path.join(PKG, 'package.json')).catch(() => {
    throw new Error(`${PKG} is missing: run npm run build:bundler first`);
  });
  project = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-bundler-'));
  await fs.mkdir(path.join(project, 'node_modules'));
  await fs.symlink(PKG, path.join(project, 'node_modules', 'consent-analytics'), 'dir');
  await fs.mkdir(path.join(project, 'src'));
  await fs.writeFile(path.join(project, 'src', 'index.mjs'), ENTRY);
  bundleDir = path.join(project, 'dist');
  const assets = await buildWithWebpack({
    context: project,
    entry: './src/index.mjs',
    out: bundleDir,
    experiments: { asyncWebAssembly: true },
  });
  assert.ok(assets.includes('main.js'), `webpack emitted ${assets}`);
  assert.ok(assets.some((a) => a.endsWith('.wasm')), `webpack emitted no .wasm: ${assets}`);
  await fs.writeFile(path.join(bundleDir, 'index.html'), PAGE);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (project) await fs.rm(project, { recursive: true, force: true });
});

test('a webpack build of the bundler package validates config, gates a vendor on consent and delivers', () =>
  withServer(
    async (server) => {
      const p = await openPage(browser, `${server.url}/bundle/index.html`);
      await waitFor(() => p.page.evaluate(() => window.ready === true), { message: 'bundle ran' });

      const bad = await p.page.evaluate(() =>
        window.Analytics.load({ destinatons: [] }).then(
          () => 'loaded',
          (e) => `${e.constructor.name}: ${e.message}`,
        ),
      );
      assert.match(bad, /^Error: .*destinatons/, 'an unknown key is named');

      await p.page.evaluate(async () => {
        window.a = await window.Analytics.load({
          destinations: [
            { type: 'relay', settings: { endpoint: '/v1/batch', flushIntervalMs: 50 } },
            { type: 'posthog', settings: { apiKey: 'phc_test', scriptSrc: '/fake/posthog.js' } },
            { type: 'collector' },
          ],
        });
      });
      const before = await p.page.evaluate(() => window.a.track('Before Consent', { n: 1 }));
      const typeError = await p.page.evaluate(() => {
        try {
          window.a.track(42);
          return 'no error';
        } catch (e) {
          return `${e.constructor.name}: ${e.message}`;
        }
      });
      assert.match(typeError, /^TypeError: .*event/, 'bad input names the argument');

      await waitFor(async () => (await sinkEvents(server.url)).count >= 1, { message: 'relay' });
      assert.equal(
        await p.page.evaluate(() => document.querySelectorAll('script[src*="posthog"]').length),
        0,
        'no vendor script before consent',
      );

      await p.page.evaluate(() => window.a.setConsent({ measurement: true }));
      const after = await p.page.evaluate(() => window.a.track('After Consent', { n: 2 }));
      await waitFor(
        () =>
          p.page.evaluate(() =>
            (window.__vendorCalls?.posthog ?? []).some((c) => c[0] === 'capture' && c[1] === 'After Consent'),
          ),
        { message: 'posthog capture after the grant' },
      );
      const posthogEvents = await p.page.evaluate(() =>
        window.__vendorCalls.posthog.filter((c) => c[0] === 'capture').map((c) => c[1]),
      );
      assert.deepEqual(posthogEvents, ['After Consent'], 'the vendor gets only consented events');
      assert.equal(
        await p.page.evaluate(() => document.querySelectorAll('script[src*="/fake/posthog.js"]').length),
        1,
      );

      const sink = await waitFor(
        async () => {
          const s = await sinkEvents(server.url);
          return s.events.some((r) => r.messageId === after) ? s : null;
        },
        { message: 'both events at the sink' },
      );
      const tracked = sink.events.map((r) => r.event).filter((e) => e.type === 'track');
      assert.deepEqual(
        tracked.map((e) => [e.messageId, e.event]),
        [
          [before, 'Before Consent'],
          [after, 'After Consent'],
        ],
      );
      assert.equal(tracked[0].context.library.name, 'consent-analytics');
      assert.deepEqual(
        await p.page.evaluate(() => window.seen),
        ['Before Consent', 'After Consent'],
        'the registered JS destination got both',
      );
      assert.deepEqual(p.runtimeErrors(), []);
      assert.deepEqual(p.errors, []);
      await p.close();
    },
    { bundleDir },
  ));
