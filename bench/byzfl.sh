#!/usr/bin/env bash
# ByzFL's benchmark and Mycelix FL on the same grid, side by side.
#
#   bench/byzfl.sh [CONFIG] [OUT]     # default bench/byzfl-grid.json, bench/byzfl-out
#   AGGREGATORS=median,trimmed-mean bench/byzfl.sh ...   # Mycelix FL's aggregators
#
# CONFIG is ByzFL's own config.json format (github.com/LPD-EPFL/byzfl, byzfl/benchmark).
# The script
#   1. builds mycelix-fl and checks that it can run CONFIG (before any long run);
#   2. installs ByzFL 0.0.11 (with torchvision, beside bench/train.sh's PyTorch) into
#      bench/.venv-torch, once;
#   3. gives ByzFL Fashion-MNIST from Debian's dataset-fashion-mnist (no download);
#   4. runs ByzFL's run_benchmark on CONFIG (both cores, one thread each);
#   5. runs `mycelix-fl matrix --byzfl CONFIG` (the same grid, with Mycelix FL's
#      committee, reputation and aggregator);
#   6. writes OUT/compare.md (one table: ByzFL's best aggregator's worst case over attacks
#      beside Mycelix FL's, cell by cell) and OUT/heatmaps.png (the pair of heatmaps).
# Reruns resume: ByzFL skips runs whose results exist; delete OUT to start over.
set -euo pipefail
config="$(realpath "${1:-$(dirname "$0")/byzfl-grid.json}")"
o="${2:-$(dirname "$0")/byzfl-out}"
mkdir -p "$o"
out="$(realpath "$o")"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"
aggregators="${AGGREGATORS:-median}"

# The dev build: it shares the compiled tree with the tests and the main job, and the dev
# profile already optimises the learning code (fl_learn, the matrix products).
echo "== building mycelix-fl and checking $config"
cargo build --quiet --locked -p fl_node --bin mycelix-fl
mycelix="$CARGO_TARGET_DIR/debug/mycelix-fl"
# ByzFL's Clipping pre-aggregator bounds each client vector's norm to c (2.0 by default).
# A Mycelix FL update is the step itself (learning rate times the vector), so the same
# bound on the task's update norm is c x learning rate.
norm="$(python3 bench/byzfl_compare.py --clip-bound "$config")"
"$mycelix" matrix --byzfl "$config" --aggregators "$aggregators" --max-update-norm "$norm" \
  --dry-run

TORCH_VERSION=2.15.0
venv="$PWD/bench/.venv-torch"
if ! "$venv/bin/python" -c "import byzfl, torchvision, seaborn" 2>/dev/null; then
  echo "== installing ByzFL 0.0.11 and torchvision into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION" torchvision byzfl==0.0.11 \
    matplotlib seaborn scipy
fi

echo "== Fashion-MNIST for ByzFL (torchvision's layout, from Debian's package)"
src="${MYCELIX_FL_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
raw="$out/data/FashionMNIST/raw"
mkdir -p "$raw"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ ! -e "$raw/$f" ]; then
    if [ -e "$src/$f.gz" ]; then gunzip -c "$src/$f.gz" > "$raw/$f.part"
    elif [ -e "$src/$f" ]; then cp "$src/$f" "$raw/$f.part"
    else echo "error: no $f(.gz) in $src (apt install dataset-fashion-mnist)" >&2; exit 1; fi
    mv "$raw/$f.part" "$raw/$f"
  fi
done

echo "== ByzFL's run_benchmark on $config"
mkdir -p "$out/byzfl"
python3 bench/byzfl_compare.py --stage "$config" "$out"
start=$SECONDS
(cd "$out/byzfl" && PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$venv/bin/python" -c '
import torch
torch.set_num_threads(1)
from byzfl.benchmark import run_benchmark
if __name__ == "__main__":
    run_benchmark(2)
') > "$out/byzfl.log" 2>&1 || { tail -n 30 "$out/byzfl.log" >&2; exit 1; }
echo "ByzFL: $((SECONDS - start)) s (log: $out/byzfl.log)"

echo "== mycelix-fl matrix --byzfl $config (aggregators: $aggregators; update norm bound $norm)"
start=$SECONDS
"$mycelix" matrix --byzfl "$config" --aggregators "$aggregators" --max-update-norm "$norm" \
  --output-dir "$out/mycelix" > "$out/mycelix.log"
tail -n 3 "$out/mycelix.log"
echo "Mycelix FL: $((SECONDS - start)) s"

echo "== side by side"
"$venv/bin/python" bench/byzfl_compare.py "$out/byzfl/results" "$out/mycelix/byzfl.json" "$out"
