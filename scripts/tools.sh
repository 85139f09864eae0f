#!/usr/bin/env bash
# Installs the pinned Holochain tools into $MYCELIX_FL_BIN (default ~/.cache/mycelix-fl/bin)
# when missing:
#   hc 0.6.3 (holochain_cli), built from this workspace's Cargo.lock (crates/holochain_tools)
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
echo "$bin"
