# Shared by the experiment scripts (source it): runs main.py jobs listed one per line, JOBS at a
# time. The caller sets RUNS (the runs folder), JOBS, PY (the Python interpreter) and the array
# SMALL (flags common to every run). With JOBS > 1 each job is pinned (taskset) to its own share
# of the cores: small models (the MLPs of Table 1) go about 1.3x further in total that way on a
# 2-core CPU than as unpinned jobs that each spread their threads over both cores. GRID_PIN=0
# turns pinning off; GRID_POLL_S is how often (seconds, default 5) a free slot is looked for.

# glibc's malloc returns large freed buffers to the kernel and faults them in again at the next
# iteration: about 9,600 page faults per iteration of the semi-supervised MLPs, a fifth of their
# time spent in the kernel. Keeping freed memory in the process (no mmap'd chunks, no trimming)
# made those runs about 20 % faster (docs/semi_supervised.md). A value set beforehand wins.
export MALLOC_MMAP_MAX_=${MALLOC_MMAP_MAX_-0}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_--1}
export MALLOC_TOP_PAD_=${MALLOC_TOP_PAD_-268435456}

# grid_job NAME CONFIG DATASET SEED FLAGS...: one run in $RUNS/NAME, its log in $RUNS/NAME.log;
# skipped once it finished ($RUNS/NAME/DONE), resumed from its last checkpoint otherwise.
grid_job() {
  local name=$1 config=$2 data=$3 seed=$4 dir="$RUNS/$1"
  shift 4
  [ -f "$dir/DONE" ] && return 0
  local pin=()
  [ -n "${GRID_CPUS:-}" ] && pin=(taskset -c "$GRID_CPUS")
  local metrics=classifier_fid
  [[ $data == stacked_* ]] && metrics=classifier_fid,modes
  "${pin[@]}" $PY main.py --config="configs/$config:$data" --workdir="$dir" "${SMALL[@]}" \
      --config.seed="$seed" --config.eval.metrics="$metrics" "$@" \
      > "$RUNS/$name.log" 2>&1 && touch "$dir/DONE"
}

# grid_cpus SLOT: the cores of job slot SLOT (0 .. JOBS-1) as a taskset list, or nothing when
# jobs are not pinned (one job, GRID_PIN=0, no taskset, fewer cores than jobs).
grid_cpus() {
  local cores
  cores=$(nproc)
  if [ "$JOBS" -le 1 ] || [ "${GRID_PIN:-1}" = 0 ] || ! command -v taskset > /dev/null \
      || [ "$cores" -lt "$JOBS" ]; then
    return 0
  fi
  local per=$((cores / JOBS))
  echo "$(($1 * per))-$(($1 * per + per - 1))"
}

# grid_run: runs the lines "NAME CONFIG DATASET SEED FLAGS..." of its input, JOBS at a time
# (each in a free slot of cores, see grid_cpus), and returns when all have ended.
grid_run() {
  mkdir -p "$RUNS"
  local name config data seed flags slot pid
  local -a slots=()
  while read -r name config data seed flags; do
    while :; do
      for ((slot = 0; slot < JOBS; slot++)); do
        pid=${slots[slot]:-}
        if [ -z "$pid" ] || ! kill -0 "$pid" 2> /dev/null; then
          break 2
        fi
      done
      sleep "${GRID_POLL_S:-5}"
    done
    # shellcheck disable=SC2086
    GRID_CPUS=$(grid_cpus "$slot") grid_job "$name" "$config" "$data" "$seed" $flags &
    slots[slot]=$!
  done
  wait
}

# grid_show: the lines "NAME CONFIG DATASET SEED FLAGS..." of its input with each run's state in
# $RUNS (done, resumes at its last checkpoint, new) and its flags; runs and writes nothing.
grid_show() {
  local name config data seed flags state
  while read -r name config data seed flags; do
    state=new
    if [ -f "$RUNS/$name/DONE" ]; then
      state=done
    elif [ -n "$(ls -A "$RUNS/$name/checkpoints" 2>/dev/null)" ]; then
      state=resumes
    fi
    echo "$name [$state]: --config=configs/$config:$data --config.seed=$seed ${SMALL[*]} $flags"
  done
}
