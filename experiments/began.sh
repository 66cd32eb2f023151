#!/usr/bin/env bash
# BEGAN experiments (issue: BEGAN), scaled to a CPU: the diversity ratio γ ∈ {0.3, 0.5, 0.7} on
# Fashion-MNIST and stacked Fashion-MNIST, and the unbalanced pairs of the paper's Sec. 5 at
# γ = 0.5 on Fashion-MNIST: a weaker D (4-d embedding h) and a weaker G (4-d noise z).
#
#   experiments/began.sh RUNS_DIR [SEEDS] [STEPS] [JOBS] [DATASETS]
#
# DATASETS (default "fashion_mnist stacked_fashion_mnist") picks the γ runs' datasets; the
# unbalanced pairs run when it includes fashion_mnist.
# Runs that finished (RUNS_DIR/<run>/DONE) are skipped; an interrupted run resumes from its last
# checkpoint. Summarise with experiments/began_summary.py RUNS_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
source experiments/grid.sh
RUNS=${1:?usage: $0 RUNS_DIR [SEEDS] [STEPS] [JOBS] [DATASETS]}
SEEDS=${2:-0}
STEPS=${3:-5000}
JOBS=${4:-1}
DATASETS=${5:-fashion_mnist stacked_fashion_mnist}
PY=${PYTHON:-python}
# The paper uses n = 64 or 128 and N_h = N_z = 64; n = 16, N_h = N_z = 32 fit a CPU.
SMALL=(--config.model.width=16 --config.model.hidden_dim=32 --config.model.z_dim=32
       --config.train.log_every=50 --config.train.sample_every=500
       --config.train.checkpoint_every=500 --config.eval.every=250 --config.eval.num_samples=4096
       --config.eval.best_metric= --config.train.steps="$STEPS")

list() {
  for seed in $SEEDS; do
    for data in $DATASETS; do
      for gamma in 0.5 0.3 0.7; do
        echo "g${gamma/./}_${data}_s${seed} began.py $data $seed" \
             "--config.objective.gamma=$gamma"
      done
    done
    [[ " $DATASETS " == *" fashion_mnist "* ]] || continue
    echo "small_h_fashion_mnist_s${seed} began.py fashion_mnist $seed" \
         "--config.model.hidden_dim=4"
    echo "small_z_fashion_mnist_s${seed} began.py fashion_mnist $seed" \
         "--config.model.z_dim=4"
  done
}

list | grid_run
