#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (see fuzz/README.md) for a fixed time each and
# prints one summary line per target. Installs cargo-fuzz when missing; builds on the
# installed nightly toolchain (libFuzzer needs its sanitizer flags), outside the clone.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s, every target
#   FUZZ_CMIN=1 scripts/fuzz.sh 300 entries   also minimise the working corpus afterwards
#                                             (cargo fuzz cmin)
#
# Each target starts from its committed seeds (fuzz/corpus/<target>, read only, where the
# target has any) and a working corpus kept between runs in
# $CARGO_TARGET_DIR_FUZZ/corpus/<target>, outside the clone: what the fuzzer finds is far
# larger than the few KB of seeds worth committing. A crash
# leaves its input in fuzz/artifacts/<target>/ (git-ignored) and makes the script exit 1
# after the remaining targets have run; reproduce with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
#
# Environment: CARGO_TARGET_DIR_FUZZ (default ~/.cache/mycelix-fl/fuzz-target), FUZZ_CMIN.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
target_dir="${CARGO_TARGET_DIR_FUZZ:-$HOME/.cache/mycelix-fl/fuzz-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The nightly toolchain that is installed (rust-toolchain.toml pins the zomes' stable one).
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "no nightly toolchain installed (rustup toolchain list); cargo-fuzz needs one" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Longest input per target: large enough for every entry type and a few small models,
# small enough that each execution stays fast.
max_len() {
  case "$1" in
    entries) echo 8192 ;;
    tensor_codec | recompute) echo 4096 ;;
    *) echo 2048 ;;
  esac
}

# Debug assertions and overflow checks on, address sanitizer (the default).
build=(-a --target-dir "$target_dir")
cargo +nightly fuzz build "${build[@]}" >&2

failed=()
summary=()
for t in "${targets[@]}"; do
  work="$target_dir/corpus/$t"
  log="$target_dir/logs/$t.log"
  mkdir -p "$work" "$(dirname "$log")"
  seeds=()
  if [ -d "fuzz/corpus/$t" ]; then
    seeds=("fuzz/corpus/$t")
  fi
  echo "== $t: ${seconds}s" >&2
  status=0
  cargo +nightly fuzz run "${build[@]}" "$t" "$work" "${seeds[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -timeout=30 -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    grep -E '^(==[0-9]+== ?ERROR|thread .* panicked|ALARM|SUMMARY|artifact_prefix|Test unit written)' "$log" >&2 ||
      tail -n 20 "$log" >&2
  elif [ "${FUZZ_CMIN:-}" = 1 ]; then
    cargo +nightly fuzz cmin "${build[@]}" "$t" "$work" -- -max_len="$(max_len "$t")" >>"$log" 2>&1
  fi
  files=$(find "$work" -type f | wc -l)
  bytes=$(find "$work" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  # corp: libFuzzer's corpus at the end of the run; work corpus: what is kept for the next.
  line=$(printf '%-13s %5ss  execs %-10s cov %-6s ft %-6s corp %-12s work corpus %s files, %s bytes%s' \
    "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$files" "$bytes" \
    "$([ "$status" -ne 0 ] && echo "  CRASHED (log: $log)")")
  summary+=("$line")
  echo "$line" >&2
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
