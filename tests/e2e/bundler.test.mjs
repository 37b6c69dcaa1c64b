// End-to-end test of the npm package as page authors install it: `npm pack` of pkg/, installed
// from the tarball into one throwaway project, then built and run the way each kind of site
// does, with no plugin, no bundler setting and no `init()`: the Vite dev server, a Vite build,
// webpack 5, esbuild, a plain `<script type="module">` page, a Next.js client component and a
// Nuxt plugin, each in Chromium against the dev server's relay sink, delivering an event
// tracked before the load completed and one after; and the package imported in Node (server-side
// rendering), where `Analytics.load` returns an inert client.
//
// The page code is README.md's: each code block of the README is marked `<!-- e2e: name -->`
// and is written into the project as it stands, so every snippet a reader copies is run here.
//
//   npm run build && node --test tests/e2e/bundler.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import * as vite from 'vite';
import { launchBrowser, withServer, openPage, sinkEvents, waitFor } from './harness.mjs';
import { buildWithWebpack } from './webpack.mjs';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PKG = path.join(ROOT, 'pkg');

/** README.md's code blocks by their `<!-- e2e: name -->` marker. */
export async function readmeSnippets() {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const snippets = new Map();
  const unmarked = [];
  for (const m of readme.matchAll(/(?:<!-- e2e: ([\w.-]+) -->\n)?```(\w*)\n([\s\S]*?)\n```/g)) {
    const [, name, lang, code] = m;
    if (name) snippets.set(name, code);
    else if (lang !== 'sh') unmarked.push(code.split('\n')[0]);
  }
  return { snippets, unmarked };
}

/** A favicon, so the browser asks for none (its 404 would be a console error). */
const HEAD = '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>site</title>';

// The test's hook into a built page: the README's `analytics` on `window`.
const HOOK = `import './main.js';
import { analytics } from './analytics.js';
window.__analytics = analytics;
`;

// `react`, as far as the Next.js snippet uses it: in the browser an effect runs after render,
// on the server never.
const REACT_BROWSER = 'export function useEffect(effect) { queueMicrotask(effect); }\n';
const REACT_SERVER = 'export function useEffect() {}\n';

let project;
let snippets;
let browser;

before(async () => {
  await fs.access(path.join(PKG, 'index.js')).catch(() => {
    throw new Error(`${PKG}/index.js is missing: run npm run build first`);
  });
  ({ snippets } = await readmeSnippets());
  project = await fs.mkdtemp(path.join(os.tmpdir(), 'consent-analytics-site-'));
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', project], { cwd: PKG });
  const tarball = path.join(project, stdout.trim().split('\n').pop());
  await fs.writeFile(path.join(project, 'package.json'), '{ "name": "site", "private": true, "type": "module" }\n');
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--offline', tarball], { cwd: project });
  const write = async (file, text) => {
    await fs.mkdir(path.dirname(path.join(project, file)), { recursive: true });
    await fs.writeFile(path.join(project, file), text);
  };
  await write('src/analytics.js', snippets.get('analytics.js'));
  await write('src/main.js', snippets.get('main.js'));
  await write('src/entry.js', HOOK);
  await write('index.html', `${HEAD}<script type="module" src="/src/entry.js"></script>\n`);
  await write('plain.html', `${HEAD}\n${snippets.get('plain.html')}\n`);
  await write('app/analytics-client.js', snippets.get('next.js'));
  await write('plugins/analytics.client.js', snippets.get('nuxt.js'));
  await write('stubs/react.js', REACT_BROWSER);
  await write('node_modules/react/package.json', '{ "name": "react", "type": "module", "main": "index.js" }\n');
  await write('node_modules/react/index.js', REACT_SERVER);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (project) await fs.rm(project, { recursive: true, force: true });
});

test('every code block of the README is one this suite runs', async () => {
  const { snippets: all, unmarked } = await readmeSnippets();
  assert.deepEqual(unmarked, [], 'README code blocks without an e2e marker');
  assert.deepEqual([...all.keys()].sort(), ['analytics.js', 'main.js', 'next.js', 'nuxt.js', 'plain.html']);
});

/**
 * Opens `url` (served by `server`, whose sink gets the relay's batches); the page's own code
 * tracked `first` before the client loaded (see README): waits for it at the sink, then tracks
 * one more through the loaded client and waits for that too.
 */
async function deliversBeforeAndAfter(server, url, { first = 'Order Completed', hook = '__analytics' } = {}) {
  const p = await openPage(browser, url);
  const sent = await p.page.evaluate(async (name) => {
    const loaded = await window[name];
    return { id: loaded.track('After Load', { n: 2 }) };
  }, hook);
  const sink = await waitFor(
    async () => {
      const s = await sinkEvents(server.url);
      const names = s.events.map((r) => r.event.event);
      return names.includes(first) && names.includes('After Load') ? s : null;
    },
    { message: `'${first}' and 'After Load' at the sink`, timeout: 15000 },
  );
  const tracked = sink.events.map((r) => r.event).filter((e) => e.type === 'track');
  assert.deepEqual(
    tracked.map((e) => e.event),
    [first, 'After Load'],
    'the event tracked before the load first, then the one after',
  );
  assert.equal(tracked[1].messageId, sent.id);
  assert.equal(tracked[0].context.library.name, 'consent-analytics');
  assert.deepEqual(p.errors, []);
  assert.deepEqual(
    p.messages.filter((m) => m.type === 'error'),
    [],
    'no console error',
  );
  await p.close();
  return tracked;
}

test('Vite dev server: the package works as installed, no plugin or setting', () =>
  withServer(async (server) => {
    const dev = await vite.createServer({
      root: project,
      configFile: false,
      logLevel: 'error',
      // The site's backend: the dev server hands /v1 to the sink, as a site proxies its API.
      server: { host: '127.0.0.1', port: 0, strictPort: false, proxy: { '/v1': server.url } },
    });
    await dev.listen();
    try {
      await deliversBeforeAndAfter(server, dev.resolvedUrls.local[0]);
    } finally {
      await dev.close();
    }
  }));

test('Vite build: the wasm is an asset of the build and loads', async () => {
  const out = path.join(project, 'dist', 'vite');
  await vite.build({ root: project, configFile: false, logLevel: 'error', base: './', build: { outDir: out } });
  const assets = await fs.readdir(path.join(out, 'assets'));
  assert.ok(assets.some((a) => a.endsWith('.wasm')), `vite emitted no .wasm: ${assets}`);
  await withServer((server) => deliversBeforeAndAfter(server, `${server.url}/bundle/dist/vite/index.html`), {
    bundleDir: project,
  });
});

test('webpack 5 with no wasm settings: production build loads and delivers', async () => {
  const out = path.join(project, 'dist', 'webpack');
  const assets = await buildWithWebpack({ context: project, entry: './src/entry.js', out });
  assert.ok(assets.some((a) => a.endsWith('.wasm')), `webpack emitted no .wasm: ${assets}`);
  await fs.writeFile(path.join(out, 'index.html'), `${HEAD}<script src="main.js"></script>\n`);
  await withServer((server) => deliversBeforeAndAfter(server, `${server.url}/bundle/dist/webpack/index.html`), {
    bundleDir: project,
  });
});

test('esbuild: a bundle that did not copy the .wasm still loads and delivers', async () => {
  const out = path.join(project, 'dist', 'esbuild');
  await esbuild.build({
    absWorkingDir: project,
    entryPoints: ['src/entry.js'],
    bundle: true,
    format: 'esm',
    outdir: out,
    logLevel: 'error',
  });
  await fs.writeFile(path.join(out, 'index.html'), `${HEAD}<script type="module" src="entry.js"></script>\n`);
  await withServer((server) => deliversBeforeAndAfter(server, `${server.url}/bundle/dist/esbuild/index.html`), {
    bundleDir: project,
  });
});

test('a plain <script type="module"> page importing the entry file', () =>
  withServer(
    (server) =>
      deliversBeforeAndAfter(server, `${server.url}/bundle/plain.html`, { first: 'Signed Up', hook: 'analytics' }),
    { bundleDir: project },
  ));

test('a Next.js client component and a Nuxt client plugin, built for the browser', async () => {
  const out = path.join(project, 'dist', 'frameworks');
  await fs.writeFile(
    path.join(project, 'src', 'frameworks.js'),
    `import { analytics as next, PageViews } from '../app/analytics-client.js';
import plugin from '../plugins/analytics.client.js';
window.__next = next;
PageViews();
window.__nuxt = plugin().provide.analytics;
window.__nuxt.track('Nuxt Before Load');
`,
  );
  await esbuild.build({
    absWorkingDir: project,
    entryPoints: ['src/frameworks.js'],
    bundle: true,
    format: 'esm',
    outdir: out,
    logLevel: 'error',
    alias: { react: './stubs/react.js' },
    // Nuxt's auto-imported `defineNuxtPlugin`, as Nuxt provides it.
    banner: { js: 'globalThis.defineNuxtPlugin = (plugin) => plugin;' },
  });
  await fs.writeFile(path.join(out, 'index.html'), `${HEAD}<script type="module" src="frameworks.js"></script>\n`);
  await withServer(
    async (server) => {
      const p = await openPage(browser, `${server.url}/bundle/dist/frameworks/index.html`);
      await p.page.evaluate(async () => {
        (await window.__next).track('Next After Load');
        (await window.__nuxt).track('Nuxt After Load');
      });
      const names = ['Nuxt Before Load', 'Next After Load', 'Nuxt After Load'];
      const sink = await waitFor(
        async () => {
          const s = await sinkEvents(server.url);
          return names.every((n) => s.events.some((r) => r.event.event === n)) ? s : null;
        },
        { message: 'the Next.js and Nuxt events at the sink', timeout: 15000 },
      );
      assert.ok(
        sink.events.some((r) => r.event.type === 'page'),
        "the Next.js component's page view",
      );
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.messages.filter((m) => m.type === 'error'), []);
      await p.close();
    },
    { bundleDir: project },
  );
});

test('Node (server-side rendering): importing and loading never throw; the client is inert', async () => {
  const script = `
import { Analytics } from 'consent-analytics';
import { analytics as next, PageViews } from './app/analytics-client.js';
globalThis.defineNuxtPlugin = (plugin) => plugin;
const { default: plugin } = await import('./plugins/analytics.client.js');
const a = Analytics.load({ destinations: [{ type: 'relay', settings: { endpoint: '/v1/batch' } }] });
const id = a.track('On The Server');
if (typeof id !== 'string' || id.length !== 36) throw new Error('track gave ' + id);
a.page(); a.identify('u1'); a.setConsent({ measurement: true }); a.reset();
await a.flush();
const loaded = await a;
loaded.track('Still Inert');
if (JSON.stringify(loaded.status()) !== '[]') throw new Error('status');
Analytics.registerDestination('x', () => ({}));
if (PageViews() !== null) throw new Error('PageViews');
next.track('x');
await next;
const nuxt = plugin().provide.analytics;
nuxt.track('x');
await nuxt;
await Analytics.load({ destinatons: [] });
console.log('ok');
`;
  const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
  assert.equal(stdout.trim(), 'ok');
  assert.equal(stderr, '');
});
