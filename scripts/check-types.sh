#!/usr/bin/env bash
# Compiles tests/types/usage.ts (the raw module, pkg/consent_analytics.d.ts), tests/types/entry.ts
# (the package entry, pkg/index.d.ts) and the two minimal consumers with `tsc --strict` (the
# typescript devDependency). Needs `npm run build` first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -f pkg/consent_analytics.d.ts ] || [ ! -f pkg/index.d.ts ]; then
  echo "check-types: pkg/consent_analytics.d.ts or pkg/index.d.ts not found (run npm run build first)" >&2
  exit 1
fi
npx --no-install tsc --noEmit --strict \
  --target es2022 --module es2022 --moduleResolution bundler \
  --lib es2022,dom \
  tests/types/usage.ts tests/types/entry.ts
# A consumer with TypeScript's default es2022 libraries and no @types (node's would bring
# esnext.disposable in), without --skipLibCheck: the shipped declarations compile as they are.
npx --no-install tsc -p tests/types/tsconfig.minimal.json
echo "check-types: ok"
