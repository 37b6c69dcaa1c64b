#!/usr/bin/env bash
# Installs every tool the build and the tests need, each only when it is missing.
# Idempotent: on a prepared machine it prints nothing and takes a second or two.
# On a fresh machine it prints one line per thing it installs (about 8 minutes in all).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

LOG="$(mktemp "${TMPDIR:-/tmp}/consent-analytics-setup.XXXXXX.log")"
trap 'rm -f "$LOG"' EXIT

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output captured; on failure shows the end of that output.
run() {
  if ! "$@" >>"$LOG" 2>&1; then
    printf 'setup: command failed: %s\n' "$*" >&2
    tail -n 40 "$LOG" >&2
    return 1
  fi
}

command -v rustup >/dev/null 2>&1 || die "rustup not found (install Rust via rustup first)"
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH"
command -v node >/dev/null 2>&1 || die "node not found (Node 20 or newer is required)"
command -v npm >/dev/null 2>&1 || die "npm not found"

# --- Rust target and components ---------------------------------------------------------
if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
  say "installing Rust target wasm32-unknown-unknown"
  run rustup target add wasm32-unknown-unknown
fi

installed_components="$(rustup component list --installed)"
for component in rustfmt clippy; do
  if ! grep -q "^${component}\(-\|$\)" <<<"$installed_components"; then
    say "installing Rust component $component"
    run rustup component add "$component"
  fi
done

# --- wasm-pack ----------------------------------------------------------------------------
if ! command -v wasm-pack >/dev/null 2>&1; then
  say "installing wasm-pack (cargo install, about 3 minutes)"
  run cargo install wasm-pack --locked
fi

# --- wasm-bindgen CLI, exactly the version in Cargo.lock ----------------------------------
lock_version() {
  [ -f Cargo.lock ] || return 0
  awk '
    /^\[\[package\]\]/ { in_wb = 0 }
    /^name = "wasm-bindgen"$/ { in_wb = 1; next }
    in_wb && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.lock
}

wb_version="$(lock_version)"
if [ -z "$wb_version" ]; then
  # No lockfile yet, or it does not resolve wasm-bindgen: let cargo complete it
  # (cargo fetch only adds what is missing; it does not upgrade what is locked).
  if [ -f Cargo.lock ]; then
    run cargo fetch --quiet
  else
    run cargo generate-lockfile --quiet
  fi
  wb_version="$(lock_version)"
fi
[ -n "$wb_version" ] || die "could not find the wasm-bindgen version in Cargo.lock"

current_wb=""
if command -v wasm-bindgen >/dev/null 2>&1; then
  current_wb="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
fi
if [ "$current_wb" != "$wb_version" ]; then
  say "installing wasm-bindgen-cli $wb_version${current_wb:+ (found $current_wb)} (cargo install, about 3 minutes)"
  # --locked first; its lockfile may pin a crate version the registry lacks, then resolve anew.
  if ! cargo install wasm-bindgen-cli --version "$wb_version" --locked --force >>"$LOG" 2>&1; then
    say "wasm-bindgen-cli $wb_version: --locked install failed, retrying without --locked"
    run cargo install wasm-bindgen-cli --version "$wb_version" --force
  fi
  got="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')"
  [ "$got" = "$wb_version" ] || die "wasm-bindgen on PATH is '$got', expected $wb_version ($(command -v wasm-bindgen || echo none))"
fi

# --- Chromium and ChromeDriver ------------------------------------------------------------
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  say "installing chromium and chromium-driver (apt-get)"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "chromium is missing and this is not root and has no sudo"
    SUDO=(sudo)
  fi
  run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi

# --- npm packages (binaryen's wasm-opt, playwright-core, typescript, terser, webpack) --------
# A node_modules that is a symlink (a second work tree sharing one install) is left alone:
# npm ci through it would empty the folder it points to.
stamp=node_modules/.package-lock.json
if [ -L node_modules ]; then
  :
elif [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] ||
   { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
  if [ -f package-lock.json ]; then
    say "installing npm packages (npm ci)"
    run npm ci --no-audit --no-fund
  else
    say "installing npm packages (npm install)"
    run npm install --no-audit --no-fund
  fi
  # npm install may write package-lock.json after the stamp; touch the stamp so the next run
  # does not install again.
  if [ -f "$stamp" ]; then touch "$stamp"; fi
fi
