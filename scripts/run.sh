#!/usr/bin/env bash
# The main job of README.md: a federated training run with attackers on real Holochain
# conductors embedded in one process. Packs the hApp first (scripts/pack.sh: a few seconds
# once built, the zomes and `hc` on a fresh machine), then runs `mycelix-fl run` with the
# arguments given, against this clone's hApp.
#
#   scripts/run.sh [mycelix-fl run options]      (scripts/run.sh --help lists them)
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/mycelix-fl/target, shared by all clones
# on this machine so builds are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
happ=(--happ "$PWD/workdir/mycelix_fl.happ")
for arg in "$@"; do
  case "$arg" in
    --help | -h) happ=() ;;
    --happ | --happ=*) happ=() ;;
  esac
done
if [ ${#happ[@]} -gt 0 ]; then
  echo "run.sh: building and packing the hApp (scripts/pack.sh)" >&2
  scripts/pack.sh >/dev/null
fi
exec cargo run --locked -p fl_node --bin mycelix-fl -- run "${happ[@]}" "$@"
