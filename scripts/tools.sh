#!/usr/bin/env bash
# Installs the pinned Holochain tools into $MYCELIX_FL_BIN (default ~/.cache/mycelix-fl/bin)
# when missing:
#   hc 0.6.3 (holochain_cli), built from this workspace's Cargo.lock (crates/holochain_tools)
#   with --sandbox also: holochain 0.6.3 (the conductor `hc sandbox` runs) and
#   kitsune2-bootstrap-srv 0.4.1 (local bootstrap + iroh relay), built in one cargo command
#   with the node (crates/fl_node): the features then unify exactly as in the node's own
#   build, so the compiled Holochain tree is reused and the sweettests' test_utils (a
#   dev-dependency of tests/) stays out of the conductor
#   with --launch also everything --sandbox installs, and hc-launch (crates/hc_launch), so
#   that `hc launch` works (hc runs any hc-<name> on PATH as `hc <name>`); always rebuilt
#   (cheap when nothing changed) and linked, so it follows the checkout
# Prints the directory; add it to PATH to use the tools by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
bin="${MYCELIX_FL_BIN:-$HOME/.cache/mycelix-fl/bin}"
mkdir -p "$bin"
want=0.6.3
if ! "$bin/hc" --version 2>/dev/null | grep -q "$want"; then
  echo "building hc $want (first time on this machine: a few minutes)" >&2
  cargo build --locked -p holochain_cli --bin hc >&2
  cp "$CARGO_TARGET_DIR/debug/hc" "$bin/hc.tmp" && mv "$bin/hc.tmp" "$bin/hc"
fi
"$bin/hc" --version >&2
if [ "${1:-}" = "--sandbox" ] || [ "${1:-}" = "--launch" ]; then
  if ! "$bin/holochain" --version 2>/dev/null | grep -q "$want" || [ ! -x "$bin/kitsune2-bootstrap-srv" ]; then
    echo "building holochain $want and kitsune2-bootstrap-srv 0.4.1" >&2
    cargo build --locked -p fl_node -p holochain -p kitsune2_bootstrap_srv \
      --bin mycelix-fl --bin holochain --bin kitsune2-bootstrap-srv >&2
    cp "$CARGO_TARGET_DIR/debug/holochain" "$bin/holochain.tmp" && mv "$bin/holochain.tmp" "$bin/holochain"
    cp "$CARGO_TARGET_DIR/debug/kitsune2-bootstrap-srv" "$bin/k2.tmp" && mv "$bin/k2.tmp" "$bin/kitsune2-bootstrap-srv"
  fi
  "$bin/holochain" --version >&2
fi
if [ "${1:-}" = "--launch" ]; then
  cargo build --locked -p hc_launch --bin hc-launch >&2
  ln -sf "$CARGO_TARGET_DIR/debug/hc-launch" "$bin/hc-launch"
fi
echo "$bin"
