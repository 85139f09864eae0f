#!/usr/bin/env bash
# Peer comparison: fl_core against ByzFL and Flower on identical inputs, in one run.
#
#   bench/peers.sh            # n in {10, 50, 100} x d in {10k, 100k}
#   bench/peers.sh --quick    # n in {10, 50} x d = 10k
#
# Installs the peers from PyPI into bench/.venv (once), builds bench/peer_bench.rs
# with the bench profile, then runs bench/peers.py, which prints one table of
# median times per call, the ratios peer/fl_core, and how far apart the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"

FLWR_VERSION=1.42.0
BYZFL_VERSION=0.0.11
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import flwr, byzfl.aggregators" 2>/dev/null; then
  echo "== installing Flower $FLWR_VERSION and ByzFL $BYZFL_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "flwr==$FLWR_VERSION" numpy scipy
  # ByzFL's wheel requires torch, whose PyPI build pulls ~3 GB of CUDA libraries. Its
  # aggregators run pure numpy on numpy input (torch is only used in isinstance checks),
  # so install it without dependencies; peers.py gives it a stand-in torch module.
  "$venv/bin/pip" install --quiet --no-deps "byzfl==$BYZFL_VERSION"
fi

echo "== building bench/peer_bench.rs (bench profile)"
cargo build --quiet --profile bench -p mycelix_fl_bench --bin peer_bench
exec "$venv/bin/python" bench/peers.py --bin "$CARGO_TARGET_DIR/release/peer_bench" "$@"
