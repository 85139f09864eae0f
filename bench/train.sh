#!/usr/bin/env bash
# Local training speed: Mycelix FL (fl_learn, the CNN on candle) against PyTorch on CPU,
# the same models, batch, optimiser and threads, in one run.
#
#   bench/train.sh              # ByzFL's three MNIST models, 1 and 2 threads
#   bench/train.sh --quick      # cnn_mnist only, 2 threads
#
# Installs PyTorch from PyPI into bench/.venv-torch (once; PyPI's Linux build brings its
# CUDA libraries, about 3 GB, though only the CPU is used), builds bench/train_bench.rs
# with the bench profile and prints one table of samples per second.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mycelix-fl/target}"

TORCH_VERSION=2.15.0
venv=bench/.venv-torch
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "== installing PyTorch $TORCH_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION" numpy
fi

models="logreg_mnist fc_mnist cnn_mnist"
threads="1 2"
if [ "${1:-}" = "--quick" ]; then models=cnn_mnist; threads=2; fi
examples=2000 batch=25 reps=3

echo "== building bench/train_bench.rs (bench profile)"
cargo build --quiet --profile bench -p mycelix_fl_bench --bin train_bench
bin="$CARGO_TARGET_DIR/release/train_bench"

echo "== one epoch of $examples images, batch $batch, SGD momentum 0.9, weight decay 1e-4; median of $reps"
printf '%-13s %7s %16s %16s %8s\n' model threads "mycelix (ex/s)" "pytorch (ex/s)" ratio
for m in $models; do
  for t in $threads; do
    ours=$(RAYON_NUM_THREADS=$t "$bin" "$m" $examples $batch $reps | awk '{print $3}')
    theirs=$(OMP_NUM_THREADS=$t "$venv/bin/python" bench/train_torch.py "$m" $examples $batch $reps "$t" | awk '{print $3}')
    ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
    printf '%-13s %7s %16s %16s %8s\n' "$m" "$t" "$ours" "$theirs" "$ratio"
  done
done
echo "ratio: Mycelix FL's samples per second over PyTorch's (above 1: faster)"
