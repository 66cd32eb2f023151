#!/usr/bin/env bash
# Table 1 of Salimans et al. 2016 (permutation-invariant MNIST, the semi-supervised K+1 GAN with
# feature matching) with configs/semi_supervised.py: MNIST at 100 labels for the seeds SEEDS_100;
# MNIST at 20 labels for the seeds SEEDS_20; MNIST at 50 and 200 labels, seed 0; the
# supervised-only baseline (the same D on the same 100 labels, no unlabelled data, no G) and
# Fashion-MNIST at 100 labels, seed 0.
#
#   experiments/semi_supervised.sh [--list] RUNS_DIR [SEEDS_100] [JOBS] [EPOCHS] [SEEDS_20]
#
# SEEDS_100 defaults to "0 1 2", JOBS (runs at once) to 1, EPOCHS to 300, the paper's and the
# released code's length (an epoch is 600 iterations of batch 100 over the 60,000 images): with
# fewer epochs a run differs from the paper's in its length only. SEEDS_20 defaults to "0"; at
# 20 labels the outcome varies most from one labelled subset to another. An empty SEEDS_100 or
# SEEDS_20 ("") leaves those runs out, to run the others first. --list prints the
# runs, their state in RUNS_DIR (done, resumes at the last checkpoint, new) and their flags, and
# trains nothing. Runs that finished (RUNS_DIR/<run>/DONE) are skipped, also when EPOCHS changed
# since; an interrupted run resumes from its last checkpoint. Summarise with
# experiments/semi_supervised_summary.py RUNS_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
source experiments/grid.sh
LIST=0
if [ "${1:-}" = --list ]; then
  LIST=1
  shift
fi
RUNS=${1:?usage: $0 [--list] RUNS_DIR [SEEDS_100] [JOBS] [EPOCHS] [SEEDS_20]}
SEEDS_100=${2-0 1 2}
JOBS=${3:-1}
EPOCHS=${4:-300}
SEEDS_20=${5-0}
PY=${PYTHON:-python}
# A checkpoint every 5 epochs (the config's default is every 10): an interrupted run of about 40 s
# per epoch on a CPU then loses at most a few minutes. The config logs and evaluates every epoch.
SMALL=(--config.train.steps=$((EPOCHS * 600)) --config.train.checkpoint_every=3000)
# grid_job asks for the generator metrics; the classifier's test error is the one this game
# computes, and a later value of a flag overrides an earlier one.
EVAL=--config.eval.metrics=test_error

list() {
  for seed in $SEEDS_100; do
    echo "mnist_n100_s${seed} semi_supervised.py mnist $seed $EVAL"
  done
  for seed in $SEEDS_20; do
    echo "mnist_n20_s${seed} semi_supervised.py mnist $seed $EVAL --config.data.num_labels=20"
  done
  for labels in 50 200; do
    echo "mnist_n${labels}_s0 semi_supervised.py mnist 0 $EVAL --config.data.num_labels=$labels"
  done
  echo "mnist_n100_supervised_s0 semi_supervised.py mnist,supervised_only 0 $EVAL"
  echo "fashion_mnist_n100_s0 semi_supervised.py fashion_mnist 0 $EVAL"
}

if [ "$LIST" = 1 ]; then
  list | grid_show
else
  list | grid_run
fi
