#!/usr/bin/env bash
# Lens and AdvAs comparison (issue: Tempered GAN lens and AdvAs), scaled to a CPU:
# non-saturating DCGAN, LSGAN and WGAN-GP with and without the lens, and non-saturating DCGAN and
# WGAN-GP with and without AdvAs, on Fashion-MNIST and stacked Fashion-MNIST, seeds 0 1 2.
# A with/without pair differs only in config.stabilisers, so it starts from identical G and D.
#
#   experiments/lens_advas.sh RUNS_DIR [DATASETS] [SEEDS] [JOBS]
#
# Runs that finished (RUNS_DIR/<run>/DONE) are skipped; an interrupted run resumes from its last
# checkpoint. JOBS runs go at once (default 1). Summarise with experiments/summarise.py.
set -uo pipefail
cd "$(dirname "$0")/.."
source experiments/grid.sh
RUNS=${1:?usage: $0 RUNS_DIR [DATASETS] [SEEDS] [JOBS]}
DATASETS=${2:-fashion_mnist stacked_fashion_mnist}
SEEDS=${3:-0 1 2}
JOBS=${4:-1}
PY=${PYTHON:-python}
# Scaled-down networks and schedule (the paper: C=64, batch 64, a lens of 8 blocks of width
# 32 (our default), K=10k of 100k+ iterations); the lens costs width² x blocks, and at width 16
# with 8 blocks it took 13x the time of this small DCGAN's iteration on a CPU.
SMALL=(--config.model.width=16 --config.lens.width=8 --config.lens.blocks=4
       --config.train.batch_size=32
       --config.train.log_every=50 --config.train.sample_every=500
       --config.train.checkpoint_every=500 --config.eval.every=250 --config.eval.num_samples=4096
       --config.eval.best_metric=)

list() {
  for data in $DATASETS; do
    for seed in $SEEDS; do
      for obj in dcgan:3000 lsgan:3000 wgan_gp:1000; do
        o=${obj%%:*}; steps=${obj##*:}
        for lens in plain lens; do
          stab=""; [ $lens = lens ] && stab=lens
          echo "${o}_${lens}_${data}_s${seed} ${o}_lens.py $data $seed" \
               "--config.train.steps=$steps --config.lens.K=$((steps / 2))" \
               "--config.stabilisers=$stab"
        done
      done
      if [ "$data" = fashion_mnist ]; then
        for obj in dcgan:3000 wgan_gp:1000; do
          o=${obj%%:*}; steps=${obj##*:}
          echo "${o}_advas_${data}_s${seed} ${o}_lens.py $data $seed" \
               "--config.train.steps=$steps --config.lens.K=$((steps / 2))" \
               "--config.stabilisers=advas"
        done
      fi
    done
  done
}

list | grid_run
