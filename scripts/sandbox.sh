#!/usr/bin/env bash
# A federated training run on an `hc sandbox` network: N separate conductor processes on a
# local kitsune2 bootstrap server and iroh relay (127.0.0.1 only), N mycelix-fl peers
# driving them through the remote backend. Everything started here is stopped and the
# sandboxes are removed on exit, success or not.
#
#   scripts/sandbox.sh [NODES] [-- extra mycelix-fl run flags]
#   scripts/sandbox.sh 4 -- --rounds 5 --attack noise --aggregator median
#
# NODES defaults to 4. The default run is 3 rounds with 25 % sign_flip attackers and the
# coordinate median (Multi-Krum needs n > 2f + 2). Installs the pinned holochain, hc and
# kitsune2-bootstrap-srv into $MYCELIX_FL_BIN when missing (scripts/tools.sh) and packs the
# hApp (scripts/pack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
nodes="${1:-4}"
shift || true
[ "${1:-}" = "--" ] && shift
case "$nodes" in
  ''|*[!0-9]*) echo "error: NODES must be a number, got '$nodes'" >&2; exit 2 ;;
esac

bin="$(scripts/tools.sh --sandbox)"
export PATH="$bin:$PATH"
scripts/pack.sh >/dev/null
cargo build --locked -p fl_node --bin mycelix-fl >&2

work="$(mktemp -d -t mycelix-fl-sandbox-XXXXXX)"
pids=()
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do
    # Each background job leads its own process group (set -m below): stop the group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # hc starts each conductor in a process of its own; their command lines name $work.
  pkill -TERM -f -- "$work" 2>/dev/null || true
  for _ in $(seq 50); do pgrep -f -- "$work" >/dev/null || break; sleep 0.1; done
  pkill -KILL -f -- "$work" 2>/dev/null || true
  for _ in $(seq 50); do pgrep -f -- "$work" >/dev/null || break; sleep 0.1; done
  (cd "$work" && hc sandbox clean >/dev/null 2>&1) || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM
set -m

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
kitsune2-bootstrap-srv --listen "127.0.0.1:$port" >"$work/bootstrap.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  grep -q "Listening" "$work/bootstrap.log" && break
  sleep 0.1
done
grep -q "Listening" "$work/bootstrap.log" || { echo "error: the bootstrap server did not start (see $work/bootstrap.log)" >&2; exit 1; }
echo "bootstrap server and relay: $url"

# Generate the sandboxes. `network ...` must come last; without it the sandboxes would
# point at public servers.
(cd "$work" && echo pass | hc sandbox --piped generate --in-process-lair \
  -n "$nodes" --app-id mycelix_fl --root "$work" \
  "$OLDPWD/workdir/mycelix_fl.happ" network --bootstrap "$url" quic "$url") \
  >"$work/generate.log" 2>&1 || { echo "error: hc sandbox generate failed:" >&2; tail -20 "$work/generate.log" >&2; exit 1; }
(cd "$work" && echo pass | hc sandbox --piped run --all) >"$work/sandbox.log" 2>&1 &
pids+=($!)
echo "starting $nodes sandbox conductors (log: $work/sandbox.log)"
ports=""
for _ in $(seq 600); do
  ports="$(grep -o '"admin_port":[0-9]*' "$work/sandbox.log" | grep -o '[0-9]*$' | paste -sd, - || true)"
  [ -n "$ports" ] && [ "$(echo "$ports" | tr ',' '\n' | wc -l)" -ge "$nodes" ] && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "error: hc sandbox exited early:" >&2
    tail -20 "$work/sandbox.log" >&2
    exit 1
  fi
  sleep 0.5
done
[ -n "$ports" ] || { echo "error: no admin ports after 300 s" >&2; tail -20 "$work/sandbox.log" >&2; exit 1; }
echo "admin ports: $ports"

run_args=(--rounds 3 --byzantine-fraction 0.25 --aggregator median)
[ "$#" -gt 0 ] && run_args=("$@")
"$CARGO_TARGET_DIR/debug/mycelix-fl" run --backend remote --admin-ports "$ports" "${run_args[@]}"
