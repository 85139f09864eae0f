#!/usr/bin/env bash
# The dashboard: installs its npm packages (from ui/package-lock.json), type-checks,
# runs its unit tests (vitest), builds ui/dist, zips it to ui/dist.zip and packs
# workdir/mycelix_fl.webhapp (needs workdir/mycelix_fl.happ: scripts/pack.sh).
#
#   scripts/ui.sh            all of it
#   scripts/ui.sh --no-test  skip the unit tests
set -euo pipefail
cd "$(dirname "$0")/.."
run_tests=1
[ "${1:-}" = "--no-test" ] && run_tests=0
command -v npm >/dev/null || { echo "error: npm is missing: install Node.js 20 or newer" >&2; exit 1; }
hc="$(scripts/tools.sh)/hc"
cd ui
# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.mycelix-lock; then
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.mycelix-lock
fi
[ "$run_tests" = 1 ] && npm test
npm run package
cd ..
[ -f workdir/mycelix_fl.happ ] || scripts/pack.sh >/dev/null
"$hc" web-app pack workdir
ls -l ui/dist.zip workdir/mycelix_fl.webhapp
