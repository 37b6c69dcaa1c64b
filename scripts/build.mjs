// Release build of the npm package: wasm-pack (web target) with the stable toolchain, the
// package entry (js/index.js, js/index.d.ts) beside its glue, the README, then the JS
// minified with terser, as a page downloads it. The wasm is already optimised by wasm-opt
// (Cargo.toml's wasm-pack metadata); the .d.ts files keep their doc comments.
//
// One package for every page: `index.js` is the entry bundlers and `<script type="module">`
// pages import (it loads the wasm itself, on the first `Analytics.load` in a browser);
// `consent_analytics.js` stays the plain wasm-bindgen web module (`await init()`).
//
//   node scripts/build.mjs [--out-dir DIR]   (default: pkg)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { minify } from 'terser';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NAME = 'consent_analytics';

function die(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

// `text` as a literal inside a regular expression.
const escapeRe = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function usage(message) {
  console.error(`build: ${message} (usage: node scripts/build.mjs [--out-dir DIR])`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const opts = { outDir: 'pkg' };
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--out-dir') opts.outDir = value;
  else usage(`unknown option ${flag}`);
}

// wasm-pack takes the first wasm-opt on PATH: binaryen's (node_modules/.bin) must come first,
// as in npm scripts, so a direct `node scripts/build.mjs` builds the same output.
const env = {
  ...process.env,
  PATH: [path.join(ROOT, 'node_modules', '.bin'), path.join(os.homedir(), '.cargo', 'bin'), process.env.PATH].join(
    path.delimiter,
  ),
};
const cmd = ['build', '--release', '--target', 'web', '--out-dir', opts.outDir, '--out-name', NAME, '.'];

// Runs wasm-pack; whether it succeeded.
function wasmPack() {
  console.error(`build: wasm-pack ${cmd.join(' ')}`);
  const result = spawnSync('wasm-pack', cmd, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) {
    die(`could not run wasm-pack: ${result.error.message} (run npm run setup)`);
  }
  return result.status === 0;
}

if (!wasmPack()) {
  die('wasm-pack build failed');
}

// Shorten the wasm's import and export names (wasm-bindgen's carry a 16-digit hash each: about
// 10 KB raw, mostly incompressible) with binaryen, and rename them in the glue to match.
const outDir = path.resolve(ROOT, opts.outDir);
minifyNames(path.join(outDir, `${NAME}_bg.wasm`), path.join(outDir, `${NAME}.js`));

function minifyNames(wasmFile, glueFile) {
  const tmp = `${wasmFile}.min`;
  const features = ['bulk-memory', 'nontrapping-float-to-int', 'sign-ext', 'mutable-globals', 'reference-types', 'multivalue'];
  const args = [wasmFile, ...features.map((f) => `--enable-${f}`), '--minify-imports-and-exports-and-modules', '-o', tmp];
  const run = spawnSync('wasm-opt', args, { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.error || run.status !== 0) {
    die(`wasm-opt --minify-imports-and-exports failed: ${run.error?.message ?? run.stderr}`);
  }
  const map = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
  const bytes = fs.readFileSync(tmp);
  const modules = new Set(WebAssembly.Module.imports(new WebAssembly.Module(bytes)).map((i) => i.module));
  if (modules.size !== 1) {
    die(`expected one import module after minifying, found ${[...modules].join(', ')}`);
  }
  const [module] = modules;
  let glue = fs.readFileSync(glueFile, 'utf8');
  const swap = (pattern, to, what) => {
    const before = glue;
    glue = glue.replace(pattern, () => to);
    if (glue === before) {
      die(`${what} not found in ${path.basename(glueFile)}; cannot rename it`);
    }
  };
    // Import object keys (`__wbg_x_<hash>: function`) and the module they are grouped under.
  // Snippet functions the wasm imports directly (no conversion needed) come from their module's
  // namespace object; after minifying, every import is in one module.
  const direct = [];
  for (const [from_module, from, to] of map.imports) {
    if (from_module === './consent_analytics_bg.js') {
      swap(new RegExp(`(?<![\\w$])${escapeRe(from)}(?=\\s*:)`, 'g'), to, `import ${from}`);
      continue;
    }
    const ns = glue.match(new RegExp(`^import \\* as (\\w+) from ["']${escapeRe(from_module)}["']`, 'm'));
    if (!ns) {
      die(`no namespace import of ${from_module} for ${from}; cannot rename it`);
    }
    direct.push(`${JSON.stringify(to)}: ${ns[1]}.${from}`);
  }
  const moduleLine = /"\.\/consent_analytics_bg\.js": (\w+),/;
  const own = glue.match(moduleLine);
  if (!own) {
    die(`the import module name not found in ${path.basename(glueFile)}`);
  }
  swap(moduleLine, `${JSON.stringify(module)}: Object.assign(${own[1]}, { ${direct.join(', ')} }),`, 'the import module name');
  glue = glue.replace(/^\s*"\.\/snippets\/[^"]+": \w+,\n/gm, '');
  // Exports are only ever read as `wasm.<name>`.
  for (const [from, to] of map.exports) {
    const read = new RegExp(`wasm\\.${escapeRe(from)}(?![\\w$])`, 'g');
    if (glue.search(read) >= 0) swap(read, `wasm.${to}`, `export ${from}`);
  }
  fs.writeFileSync(glueFile, glue);
  fs.renameSync(tmp, wasmFile);
  // The declarations of the raw exports (`InitOutput`, `_bg.wasm.d.ts`) follow the new names.
  for (const dts of [glueFile.replace(/\.js$/, '.d.ts'), `${wasmFile}.d.ts`]) {
    let text = fs.readFileSync(dts, 'utf8');
    for (const [from, to] of map.exports) {
      text = text.replace(new RegExp(`(readonly |export const )${escapeRe(from)}:`, 'g'), (_, lead) => `${lead}${to}:`);
    }
    fs.writeFileSync(dts, text);
  }
}

// One JS file for the glue. wasm-bindgen puts each JS snippet (`inline_js`, `module = ...`) in
// its own file under snippets/; a page would fetch each and gzip cannot share their words.
// Each snippet becomes a function scope inside the glue, its exports returned as an array and
// taken apart by position (so no export name survives minifying as a property key).
inlineSnippets(path.join(outDir, `${NAME}.js`));

function inlineSnippets(glueFile) {
  const original = fs.readFileSync(glueFile, 'utf8');
  let glue = original;
  // `import { a, b as c } from './snippets/..';` and `import * as x from "./snippets/.."`.
  const importRe = /^import (\{[^}]*\}|\* as [\w$]+) from (['"])(\.\/snippets\/[^'"]+)\2;?$/gm;
  const modules = new Map(); // snippet path -> [variable holding its exports, their names]
  const namespaces = []; // namespace imports: their `ns.name` uses become `ns_name`
  // `const [, b, c] = from;`: the exports in `names` (export name -> local name) by position.
  const take = (exported, names, from) => `const [${exported.map((e) => names.get(e) ?? '').join(', ')}] = ${from};`;
  glue = glue.replace(importRe, (_, what, __, rel) => {
    let decl = '';
    if (!modules.has(rel)) {
      const name = `__snippet${modules.size}`;
      let code = fs.readFileSync(path.join(path.dirname(glueFile), rel), 'utf8');
      const exported = [];
      code = code.replace(/(^|[;}\s])export\s+(async\s+function|function|const|let|class)\s+([\w$]+)/g, (m, lead, kind, id) => {
        exported.push(id);
        return `${lead}${kind} ${id}`;
      });
      // Line comments (from the line start or after whitespace, so not `https://`) may say
      // the words freely; only code is checked.
      const codeOnly = code.replace(/(^|\s)\/\/.*$/gm, '$1');
      if (/(^|[;}\s])(export|import)[\s{*]/.test(codeOnly)) {
        die(`snippet ${rel} has an export or import form the inliner does not handle`);
      }
      modules.set(rel, [name, exported]);
      decl = `const ${name} = (() => {\n${code}\nreturn [${exported.join(', ')}];\n})();\n`;
    }
    const [name, exported] = modules.get(rel);
    const check = (e) => exported.includes(e) || die(`${rel} has no export ${e} for the glue`);
    if (what.startsWith('*')) {
      const ns = what.slice(5).trim();
      const used = new Set([...original.matchAll(new RegExp(`(?<![\\w$.])${escapeRe(ns)}\\.([\\w$]+)`, 'g'))].map((m) => m[1]));
      used.forEach(check);
      namespaces.push(ns);
      return `${decl}${take(exported, new Map([...used].map((e) => [e, `${ns}_${e}`])), name)}`;
    }
    const specs = what.slice(1, -1).split(',').map((n) => n.trim()).filter(Boolean).map((n) => n.split(/\s+as\s+/));
    specs.forEach(([e]) => check(e));
    return `${decl}${take(exported, new Map(specs.map(([e, alias]) => [e, alias ?? e])), name)}`;
  });
  for (const ns of namespaces) {
    glue = glue.replace(new RegExp(`(?<![\\w$.])${escapeRe(ns)}\\.([\\w$]+)`, 'g'), (_, e) => `${ns}_${e}`);
  }
  if (/from\s*['"]\.\/snippets\//.test(glue)) {
    die('a snippet import was left in the glue');
  }
  fs.writeFileSync(glueFile, glue);
  fs.rmSync(path.join(path.dirname(glueFile), 'snippets'), { recursive: true, force: true });
  const manifestFile = path.join(path.dirname(glueFile), 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  manifest.files = (manifest.files ?? []).filter((f) => f !== 'snippets');
  fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
}

// wasm-bindgen declares `[Symbol.dispose]()` on the class: the declarations pull in the library
// that types it, so they compile with TypeScript's default es2022 + dom libraries too.
const dtsFile = path.join(outDir, `${NAME}.d.ts`);
const dts = fs.readFileSync(dtsFile, 'utf8');
if (dts.includes('[Symbol.dispose]') && !dts.startsWith('/// <reference lib')) {
  fs.writeFileSync(dtsFile, `/// <reference lib="esnext.disposable" />\n${dts}`);
}

// The package entry beside the glue, the page author's README and the documents it links.
for (const file of ['index.js', 'index.d.ts', 'locate.js']) {
  fs.copyFileSync(path.join(ROOT, 'js', file), path.join(outDir, file));
}
for (const doc of ['README.md', 'CONTRIBUTING.md']) fs.copyFileSync(path.join(ROOT, doc), path.join(outDir, doc));

// The manifest: the entry for every bundler and for Node (`exports`, `module`, `main`), the raw
// web module as a subpath, and no side effects at import (nothing runs before `load`).
{
  const manifestFile = path.join(outDir, 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  const entry = { types: './index.d.ts', default: './index.js' };
  const raw = { types: `./${NAME}.d.ts`, default: `./${NAME}.js` };
  Object.assign(manifest, {
    main: 'index.js',
    module: 'index.js',
    types: 'index.d.ts',
    exports: {
      '.': entry,
      [`./${NAME}.js`]: raw,
      [`./${NAME}_bg.wasm`]: `./${NAME}_bg.wasm`,
      './package.json': './package.json',
    },
    files: [
      'index.js',
      'index.d.ts',
      'locate.js',
      `${NAME}_bg.wasm.js`,
      `${NAME}.js`,
      `${NAME}.d.ts`,
      `${NAME}_bg.wasm`,
      `${NAME}_bg.wasm.d.ts`,
      'README.md',
      'CONTRIBUTING.md',
    ],
    sideEffects: false,
  });
  fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
}

// Every .js file of the package: the entry, the glue and wasm-bindgen's snippets (inline JS helpers).
const jsFiles = fs
  .readdirSync(outDir, { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile() && e.name.endsWith('.js') && e.name !== `${NAME}_bg.wasm.js`)
  .map((e) => path.join(e.parentPath ?? e.path, e.name));
for (const file of jsFiles) {
  const code = fs.readFileSync(file, 'utf8');
  const out = await minify(code, {
    module: true,
    ecma: 2020,
    compress: { passes: 2 },
    mangle: true,
    // The glue's first line points TypeScript at the declarations; keep it.
    format: { comments: /@ts-self-types/ },
  });
  fs.writeFileSync(file, out.code);
}
console.error(`build: minified ${jsFiles.length} JS file(s) in ${path.relative(ROOT, outDir)}`);

// The wasm's bytes as a module, for the builds that leave the entry's `new URL(.., import.meta.url)`
// pointing beside their bundle (esbuild, Rollup without an asset plugin; see js/index.js).
const wasmBytes = fs.readFileSync(path.join(outDir, `${NAME}_bg.wasm`));
fs.writeFileSync(
  path.join(outDir, `${NAME}_bg.wasm.js`),
  `// ${NAME}_bg.wasm, base64: loaded only where a bundler did not copy the .wasm file.\nexport default ${JSON.stringify(wasmBytes.toString('base64'))};\n`,
);
