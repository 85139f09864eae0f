#!/usr/bin/env bash
# A federated training run on an `hc sandbox` network: N separate conductor processes on a
# local kitsune2 bootstrap server and iroh relay (127.0.0.1 only), N mycelix-fl peers
# driving them through the remote backend. Everything started here is stopped and the
# sandboxes are removed on exit, success or not.
#
#   scripts/sandbox.sh [PEERS] [--dashboard PORT] [--e2e COMMAND] [-- mycelix-fl run flags]
#   scripts/sandbox.sh 4 -- --rounds 5 --attack noise --aggregator median
#   scripts/sandbox.sh 3 --dashboard 8888 -- --rounds 5
#
# --dashboard PORT serves the web dashboard (ui/dist, built when missing) as the last
# node's agent on http://127.0.0.1:PORT before training starts, and keeps serving after
# it until Ctrl-C. --e2e COMMAND runs COMMAND alongside the training with DASHBOARD_URL,
# RESULTS (the run's JSON, written when training ends) and SANDBOX_DIR in its
# environment; the script then exits with the first failure of the two.
#
# PEERS defaults to 4. The default run is 3 rounds with 25 % sign_flip attackers and the
# coordinate median (Multi-Krum needs n >= 2f + 3). Installs the pinned holochain, hc and
# kitsune2-bootstrap-srv into $MYCELIX_FL_BIN when missing (scripts/tools.sh) and packs the
# hApp (scripts/pack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
peers=4
dashboard_port=""
e2e=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --dashboard) dashboard_port="${2:?--dashboard needs a port}"; shift 2 ;;
    --e2e) e2e="${2:?--e2e needs a command}"; shift 2 ;;
    [0-9]*) peers="$1"; shift ;;
    *) echo "error: unknown argument '$1' (usage: scripts/sandbox.sh [PEERS] [--dashboard PORT] [--e2e COMMAND] [-- run flags])" >&2; exit 2 ;;
  esac
done
case "$peers" in
  ''|*[!0-9]*) echo "error: PEERS must be a number, got '$peers'" >&2; exit 2 ;;
esac
if [ -n "$e2e" ] && [ -z "$dashboard_port" ]; then dashboard_port=0; fi
if [ -n "$dashboard_port" ] && [ ! -f ui/dist/index.html ]; then
  (cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build) >&2
fi

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
  -n "$peers" --app-id mycelix_fl --root "$work" \
  "$OLDPWD/workdir/mycelix_fl.happ" network --bootstrap "$url" quic "$url") \
  >"$work/generate.log" 2>&1 || { echo "error: hc sandbox generate failed:" >&2; tail -20 "$work/generate.log" >&2; exit 1; }
(cd "$work" && echo pass | hc sandbox --piped run --all) >"$work/sandbox.log" 2>&1 &
pids+=($!)
echo "starting $peers sandbox conductors (log: $work/sandbox.log)"
ports=""
for _ in $(seq 600); do
  ports="$(grep -o '"admin_port":[0-9]*' "$work/sandbox.log" | grep -o '[0-9]*$' | paste -sd, - || true)"
  [ -n "$ports" ] && [ "$(echo "$ports" | tr ',' '\n' | wc -l)" -ge "$peers" ] && break
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
results="$work/results.json"
for a in "${run_args[@]}"; do [ "${prev:-}" = "--output" ] && results="$a"; prev="$a"; done
[ "$results" = "$work/results.json" ] && run_args+=(--output "$results")

if [ -n "$dashboard_port" ]; then
  last_port="${ports##*,}"
  "$CARGO_TARGET_DIR/debug/mycelix-fl" dashboard --admin-port "$last_port" --port "$dashboard_port" \
    >"$work/dashboard.log" 2>&1 &
  pids+=($!)
  dashboard_url=""
  for _ in $(seq 300); do
    dashboard_url="$(grep -o 'http://[0-9.:]*/' "$work/dashboard.log" | head -1 || true)"
    [ -n "$dashboard_url" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$dashboard_url" ] || { echo "error: the dashboard did not start:" >&2; cat "$work/dashboard.log" >&2; exit 1; }
  echo "dashboard: $dashboard_url (the agent of the conductor on admin port $last_port)"
fi

e2e_pid=""
if [ -n "$e2e" ]; then
  rm -f "$results"
  DASHBOARD_URL="$dashboard_url" RESULTS="$results" SANDBOX_DIR="$work" bash -c "$e2e" &
  e2e_pid=$!
  pids+=("$e2e_pid")
fi
run_status=0
"$CARGO_TARGET_DIR/debug/mycelix-fl" run --backend remote --admin-ports "$ports" "${run_args[@]}" || run_status=$?
if [ -n "$e2e_pid" ]; then
  e2e_status=0
  wait "$e2e_pid" || e2e_status=$?
  [ "$run_status" -ne 0 ] && exit "$run_status"
  [ "$e2e_status" -ne 0 ] && { echo "error: the end-to-end check failed (exit $e2e_status)" >&2; exit "$e2e_status"; }
  exit 0
fi
[ "$run_status" -ne 0 ] && exit "$run_status"
if [ -n "$dashboard_port" ]; then
  echo "training done; the dashboard stays up at $dashboard_url until Ctrl-C"
  wait "${pids[-1]}"
fi
