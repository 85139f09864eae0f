#!/usr/bin/env bash
# Builds the zomes for wasm32 and packs the bundles with the pinned hc:
#   dnas/federated_learning/workdir/federated_learning.dna   the DNA
#   workdir/mycelix_fl.happ                                  the hApp
#   tests/workdir/federated_learning.dna                     the DNA plus the `adversary`
#                                                            coordinator (same DNA hash)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
hc="$(scripts/tools.sh)/hc"

cargo build --locked --release --target wasm32-unknown-unknown \
  -p federated_learning_integrity -p federated_learning -p adversary
zomes=dnas/federated_learning/workdir/zomes
mkdir -p "$zomes" tests/workdir/zomes
for z in federated_learning_integrity federated_learning; do
  cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$z.wasm" "$zomes/$z.wasm"
done
# The test-only coordinator (tests/adversary) goes only into the test DNA.
cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/adversary.wasm" tests/workdir/zomes/adversary.wasm
"$hc" dna pack dnas/federated_learning/workdir
"$hc" app pack workdir
"$hc" dna pack tests/workdir
ls -l dnas/federated_learning/workdir/*.dna workdir/*.happ tests/workdir/*.dna
