#!/usr/bin/env bash
# Full check chain (npm test). Stops at the first failing step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# binaryen's wasm-opt (node_modules/.bin) must come before any system wasm-opt: wasm-pack takes
# the first one on PATH, and Debian's is too old for the wasm current Rust emits.
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy (native)"
cargo clippy --all-targets -- -D warnings

step "cargo clippy (wasm32)"
cargo clippy --target wasm32-unknown-unknown --all-targets -- -D warnings

step "cargo test"
cargo test

step "wasm-pack test --headless --chrome"
out="$(mktemp "${TMPDIR:-/tmp}/consent-analytics-wasm-test.XXXXXX.log")"
trap 'rm -f "$out"' EXIT
wasm-pack test --headless --chrome --mode no-install 2>&1 | tee "$out"
# A test file without `wasm_bindgen_test_configure!(run_in_browser);` is skipped under --chrome
# and still reported as passing: treat that, and a run with no browser tests at all, as failures.
if grep -q "only configured to run in node.js" "$out"; then
  echo "test: a wasm test file lacks wasm_bindgen_test_configure!(run_in_browser); it was skipped" >&2
  exit 1
fi
if ! grep -q "Running headless tests in Chrome" "$out"; then
  echo "test: wasm-pack test ran no tests in Chrome (expected 'Running headless tests in Chrome')" >&2
  exit 1
fi

step "npm run build"
npm run --silent build

step "TypeScript declarations (tsc --strict over tests/types/)"
bash scripts/check-types.sh

step "end-to-end tests"
node --test tests/e2e/

step "size"
# Fails above size-budget.json (the measured total rounded up to the next KB): a regression guard.
npm run --silent size -- --no-build

printf '\nall checks passed\n'
