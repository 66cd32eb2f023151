#!/usr/bin/env bash
# Mode collapse with and without minibatch discrimination (Salimans et al. 2016, Sec. 3.2) on
# stacked Fashion-MNIST (three independent images as R, G, B: 1000 modes): DCGAN
# (configs/dcgan.py, non-saturating loss) as is, and with minibatch discrimination (B = 100
# kernels of dimension C = 5, j = i left out, as the released code), the seeds SEEDS each, the
# same budget: STEPS iterations of batch 32 at width 16. Every 500 iterations: modes covered
# (of 1000, by the Fashion-MNIST classifier on each channel) and classifier FID, from 10,000
# samples.
#
#   experiments/minibatch_collapse.sh [--list] RUNS_DIR [SEEDS] [JOBS] [STEPS]
#
# SEEDS defaults to "0 1 2", JOBS to 1, STEPS to 3000 (as the DCGAN runs of docs/results.md).
# Needs the Fashion-MNIST classifier: python -m gan_jax.metrics.classifiers
# --dataset=fashion_mnist. Finished runs are skipped, interrupted ones resume. Summarise with
# experiments/summarise.py RUNS_DIR --out=DIR (a mean curve per setting of modes and
# classifier FID).
set -uo pipefail
cd "$(dirname "$0")/.."
source experiments/grid.sh
LIST=0
if [ "${1:-}" = --list ]; then
  LIST=1
  shift
fi
RUNS=${1:?usage: $0 [--list] RUNS_DIR [SEEDS] [JOBS] [STEPS]}
SEEDS=${2:-0 1 2}
JOBS=${3:-1}
STEPS=${4:-3000}
PY=${PYTHON:-python}
SMALL=(
  --config.model.width=16 --config.train.batch_size=32 --config.train.steps="$STEPS"
  --config.train.log_every=100 --config.train.sample_every=1000
  --config.train.checkpoint_every=1000 --config.eval.every=500 --config.eval.num_samples=10000
  --config.eval.best_metric=
)

list() {
  for seed in $SEEDS; do
    echo "dcgan_plain_stacked_fashion_mnist_s${seed} dcgan.py stacked_fashion_mnist $seed"
    echo "dcgan_mbd_stacked_fashion_mnist_s${seed} dcgan.py stacked_fashion_mnist $seed" \
         "--config.model.minibatch_kernels=100"
  done
}

if [ "$LIST" = 1 ]; then
  list | grid_show
else
  list | grid_run
fi
