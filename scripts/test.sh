#!/usr/bin/env bash
# The test command of README.md: sets up what a fresh machine lacks, then runs every check
# CI runs. Safe to re-run; a warm run reuses the shared target directory.
#
#   scripts/test.sh
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/mycelix-fl/target, shared by all
# clones on this machine so builds are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s (%ss since start)\n' "$1" "$SECONDS"; }

# Installs Debian packages (with sudo when not root).
apt_install() {
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}

step "toolchain"
# rust-toolchain.toml pins the compiler and lists the wasm target; rustup installs a
# missing target on first use, but an explicit add gives a clear error if it cannot.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-unknown-unknown; then
  rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
fi
rustup component add --toolchain "$toolchain" rustfmt clippy >/dev/null 2>&1 || true
rustc --version

step "data: Fashion-MNIST from Debian's dataset-fashion-mnist"
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${MYCELIX_FL_FASHION_MNIST:-}" ]; then
  echo "installing Debian's dataset-fashion-mnist (70,000 images, 30 MB)"
  apt_install dataset-fashion-mnist
fi

step "iproute2, for the peer test's network namespaces"
# crates/fl_node/tests/peers.rs puts each process on a host of its own (a network
# namespace on a bridge) where it can, and on the loopback otherwise.
if ! command -v ip >/dev/null; then
  echo "installing Debian's iproute2"
  apt_install iproute2 || echo "iproute2 could not be installed: the peer test will run on the loopback"
fi

step "the main job as a newcomer runs it: scripts/run.sh in a fresh copy, before anything here is packed"
# The tracked files as they are (uncommitted edits included, times kept, so builds shared
# through the target directory see the same sources), in a new folder without anything
# built or packed: the README's main-job command must build and pack what it needs.
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
mkdir "$fresh/repo"
git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$fresh/repo"
(cd "$fresh/repo" && ./scripts/run.sh --peers 4 --rounds 2 --output "$fresh/run.json")
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["rounds"]) == 2, r["rounds"]' "$fresh/run.json"
rm -rf "$fresh"
trap - EXIT

step "zomes, hc and bundles (scripts/pack.sh)"
scripts/pack.sh

step "dashboard: npm packages, vitest, build, web-happ (scripts/ui.sh)"
scripts/ui.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked --exclude holochain_tools -- -D warnings

step "cargo test: libraries and zome logic"
cargo test --workspace --locked --exclude mycelix_fl_tests --exclude holochain_tools

step "cargo test: sweettest scenarios (real conductors, one test at a time)"
# One test binary (tests/tests/main.rs), so Holochain with test_utils is linked once.
cargo test --locked -p mycelix_fl_tests -- --test-threads=1

step "hc sandbox network: 3 conductor processes, 2 rounds, 1 attacker, the dashboard in headless Chromium"
# Debian's chromium, for the browser test; playwright-core drives it (ui/e2e).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (for the dashboard's browser test)"
  apt_install chromium chromium-driver
fi
sandbox_out="$(mktemp -d)"
scripts/sandbox.sh 3 --e2e "cd ui && ROUNDS=2 SCREENSHOT='$sandbox_out/dashboard.png' node e2e/dashboard.mjs" \
  -- --rounds 2 --byzantine-fraction 0.34 --aggregator median --output "$sandbox_out/sandbox.json" \
  | tee "$sandbox_out/sandbox.log"
grep -q '"tpr": 1.0' "$sandbox_out/sandbox.json"
# A clean shutdown: no process names the sandbox folder and the folder is gone.
sandbox_dir="$(sed -n 's/.*(log: \(.*\)\/sandbox.log).*/\1/p' "$sandbox_out/sandbox.log")"
[ -n "$sandbox_dir" ] || { echo "error: no sandbox folder in the output" >&2; exit 1; }
if pgrep -af -- "$sandbox_dir"; then echo "error: processes left running after sandbox.sh" >&2; exit 1; fi
[ ! -e "$sandbox_dir" ] || { echo "error: $sandbox_dir was not removed" >&2; exit 1; }
echo "clean shutdown: no process left, $sandbox_dir removed"
mkdir -p "$CARGO_TARGET_DIR/../e2e" && cp "$sandbox_out/dashboard.png" "$CARGO_TARGET_DIR/../e2e/dashboard.png"
echo "dashboard screenshot: $(cd "$CARGO_TARGET_DIR/../e2e" && pwd)/dashboard.png"
rm -rf "$sandbox_out"

step "hc launch: 3 agents in headless Chromium; a closed task published and invited from a page, trained by 3 peer processes; clean stop"
bin="$(scripts/tools.sh --launch)"
cargo build --locked -p fl_node --bin mycelix-fl
(cd ui && PATH="$bin:$PATH" MYCELIX_FL="$CARGO_TARGET_DIR/debug/mycelix-fl" \
  SCREENSHOT="$CARGO_TARGET_DIR/../e2e/launch.png" node e2e/launch.mjs ../workdir/mycelix_fl.webhapp)

step "fuzz targets compile (run them with scripts/fuzz.sh, on nightly)"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins

step "wasm32: clippy of fl_core and the zomes, release build of fl_core"
cargo clippy --locked --target wasm32-unknown-unknown \
  -p fl_core -p federated_learning_integrity -p federated_learning -p adversary -- -D warnings
cargo build --locked --release -p fl_core --target wasm32-unknown-unknown
ls -l "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/libfl_core.rlib" | awk '{print "libfl_core.rlib (wasm32):", $5, "bytes"}'

step "done"
