// Size check: gzip -9 size of the release web package against size-budget.json.
//
//   node scripts/size.mjs             builds pkg/ (scripts/build.mjs, as npm run build), then measures
//   node scripts/size.mjs --no-build  measures the existing pkg/
//   node scripts/size.mjs --json      also prints the numbers as one JSON line
//
// Exit 1 when wasm + JS glue exceeds maxGzipBytes.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(ROOT, 'pkg');
const BUDGET_FILE = path.join(ROOT, 'size-budget.json');
const NAME = 'consent_analytics';

const args = new Set(process.argv.slice(2));
for (const arg of args) {
  if (!['--no-build', '--json'].includes(arg)) {
    console.error(`size: unknown option ${arg} (options: --no-build, --json)`);
    process.exit(2);
  }
}

function build() {
  // The same build as `npm run build`: wasm-pack, then the JS glue minified.
  const result = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--target', 'web', '--out-dir', 'pkg'], {
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
const wasmFile = path.join(PKG, `${NAME}_bg.wasm`);
const jsFile = path.join(PKG, `${NAME}.js`);
for (const file of [wasmFile, jsFile]) {
  if (!fs.existsSync(file)) {
    console.error(`size: ${path.relative(ROOT, file)} not found (run npm run build first)`);
    process.exit(1);
  }
}

const glueFiles = [jsFile, ...filesUnder(path.join(PKG, 'snippets'))];
const wasmRaw = fs.statSync(wasmFile).size;
const wasmGz = gzipSize(wasmFile);
const glueRaw = glueFiles.reduce((sum, f) => sum + fs.statSync(f).size, 0);
const glueGz = glueFiles.reduce((sum, f) => sum + gzipSize(f), 0);
const total = wasmGz + glueGz;

const rows = [
  ['wasm', `pkg/${NAME}_bg.wasm`, wasmRaw, wasmGz],
  ['JS glue', `pkg/${NAME}.js` + (glueFiles.length > 1 ? ` + ${glueFiles.length - 1} snippet file(s)` : ''), glueRaw, glueGz],
  ['total', '', wasmRaw + glueRaw, total],
];
const labelWidth = Math.max(...rows.map((r) => r[1].length), 4);
console.log(`${'part'.padEnd(8)}  ${'file'.padEnd(labelWidth)}  ${'raw'.padStart(10)}  ${'gzip -9'.padStart(10)}  ${''.padStart(9)}`);
for (const [part, label, raw, gz] of rows) {
  console.log(`${part.padEnd(8)}  ${label.padEnd(labelWidth)}  ${fmt(raw)}  ${fmt(gz)}  ${kb(gz)}`);
}

const target = Number.isInteger(budget.target) ? budget.target : null;
const budgetLine = `budget ${budget.maxGzipBytes.toLocaleString('en-US')} B` +
  (target ? `, target ${target.toLocaleString('en-US')} B` : '') + ' (size-budget.json)';
console.log(budgetLine);

if (args.has('--json')) {
  console.log(JSON.stringify({ wasmGzip: wasmGz, glueGzip: glueGz, totalGzip: total, wasmRaw, glueRaw, glueFiles: glueFiles.map((f) => path.relative(ROOT, f)), budget }));
}

if (wasmRaw < 1024) {
  console.log('note: the wasm module is nearly empty (no exports yet?); the numbers are not meaningful.');
}

if (total > budget.maxGzipBytes) {
  console.error(
    `size: FAIL: total ${total.toLocaleString('en-US')} B gzip exceeds maxGzipBytes ` +
      `${budget.maxGzipBytes.toLocaleString('en-US')} B in size-budget.json`,
  );
  process.exit(1);
}
if (target && total > target) {
  console.log(`size: ok, within budget but ${(total - target).toLocaleString('en-US')} B over the target`);
} else {
  console.log('size: ok');
}
