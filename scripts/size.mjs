// Size check: the gzip -9 size of every .wasm and .js file of the release package (pkg/) and
// their total, against size-budget.json: a guard against regressions, set to the measured total
// rounded up to the next KB (README "Size" says where the bytes go).
//
//   node scripts/size.mjs             builds pkg/ (scripts/build.mjs, as npm run build), then measures
//   node scripts/size.mjs --no-build  measures the existing pkg/
//   node scripts/size.mjs --json      also prints the numbers as one JSON line
//
// Exit 1 when the total exceeds maxGzipBytes.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(ROOT, 'pkg');
const BUDGET_FILE = path.join(ROOT, 'size-budget.json');

const args = new Set(process.argv.slice(2));
for (const arg of args) {
  if (!['--no-build', '--json'].includes(arg)) {
    console.error(`size: unknown option ${arg} (options: --no-build, --json)`);
    process.exit(2);
  }
}

function build() {
  // The same build as `npm run build`: wasm-pack, then the JS glue minified.
  const result = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--out-dir', 'pkg'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) {
    console.error(`size: build failed (exit ${result.status})`);
    process.exit(1);
  }
}

function gzipSize(file) {
  return zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;
}

function filesUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

function readBudget() {
  let budget;
  try {
    budget = JSON.parse(fs.readFileSync(BUDGET_FILE, 'utf8'));
  } catch (err) {
    console.error(`size: cannot read budget file ${path.relative(ROOT, BUDGET_FILE)}: ${err.message}`);
    process.exit(1);
  }
  if (!Number.isInteger(budget.maxGzipBytes) || budget.maxGzipBytes <= 0) {
    console.error(`size: ${path.relative(ROOT, BUDGET_FILE)} needs a positive integer "maxGzipBytes"`);
    process.exit(1);
  }
  return budget;
}

const fmt = (n) => `${n.toLocaleString('en-US')} B`.padStart(10);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`.padStart(9);

if (!args.has('--no-build')) build();

const budget = readBudget();
// Not the wasm's base64 module: the same bytes as the .wasm, which a page loads instead of it
// only where its bundler did not copy the .wasm (esbuild, Rollup; see js/index.js).
const files = filesUnder(PKG).filter((f) => /\.(wasm|m?js)$/.test(f) && !f.endsWith('_bg.wasm.js'));
if (!files.some((f) => f.endsWith('.wasm'))) {
  console.error('size: no .wasm in pkg/ (run npm run build first)');
  process.exit(1);
}

const rows = files.map((f) => [path.relative(ROOT, f), fs.statSync(f).size, gzipSize(f)]);
const total = rows.reduce((sum, r) => sum + r[2], 0);
const raw = rows.reduce((sum, r) => sum + r[1], 0);
rows.push(['total', raw, total]);
const width = Math.max(...rows.map((r) => r[0].length), 4);
console.log(`${'file'.padEnd(width)}  ${'raw'.padStart(10)}  ${'gzip -9'.padStart(10)}`);
for (const [label, r, gz] of rows) console.log(`${label.padEnd(width)}  ${fmt(r)}  ${fmt(gz)}  ${kb(gz)}`);
console.log(`budget ${budget.maxGzipBytes.toLocaleString('en-US')} B (size-budget.json)`);

if (args.has('--json')) {
  console.log(JSON.stringify({ totalGzip: total, files: rows.slice(0, -1).map(([file, r, gz]) => ({ file, raw: r, gzip: gz })), budget }));
}

if (total > budget.maxGzipBytes) {
  console.error(
    `size: FAIL: total ${total.toLocaleString('en-US')} B gzip exceeds maxGzipBytes ` +
      `${budget.maxGzipBytes.toLocaleString('en-US')} B in size-budget.json (a regression: find ` +
      'where the bytes went, or raise the budget in the same change and say why)',
  );
  process.exit(1);
}
console.log('size: ok');
