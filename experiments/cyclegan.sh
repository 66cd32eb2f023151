#!/usr/bin/env bash
# CycleGAN on digits <-> MNIST (configs/cyclegan.py): two generators against the shared encoder,
# the seeds SEEDS each, the same budget: STEPS iterations of batch 8 per domain at width 16
# (G and PatchGAN), the learning rate constant for the first half and then linearly to 0. Each
# run is evaluated (label preservation both ways, classifier FID per domain) halfway and at
# the end.
#
#   experiments/cyclegan.sh [--list] RUNS_DIR [SEEDS] [JOBS] [STEPS]
#
# SEEDS defaults to "0 1 2", JOBS (runs at once) to 1, STEPS to 3000. The evaluation needs the
# classifiers of both domains: python -m gan_jax.metrics.classifiers --dataset=digits32 and
# --dataset=mnist. Finished runs (RUNS_DIR/<run>/DONE) are skipped; an interrupted run resumes
# from its last checkpoint. Summarise with experiments/cyclegan_summary.py RUNS_DIR; time both
# variants side by side with benchmarks/cyclegan_variants.py.
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
  --config.model.width=16 --config.model.discriminator_width=16 --config.train.batch_size=8
  --config.train.steps="$STEPS" --config.eval.every=$((STEPS / 2))
  --config.train.checkpoint_every=500 --config.train.sample_every=500
)
# grid_job asks for the generator metrics; a later value of a flag overrides an earlier one.
EVAL=--config.eval.metrics=translation

list() {
  for seed in $SEEDS; do
    echo "full_s${seed} cyclegan.py digits_mnist $seed $EVAL"
    echo "shared_s${seed} cyclegan.py digits_mnist,shared_encoder $seed $EVAL"
  done
}

if [ "$LIST" = 1 ]; then
  list | grid_show
else
  list | grid_run
fi
