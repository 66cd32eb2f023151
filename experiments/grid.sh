# Shared by the experiment scripts (source it): runs main.py jobs listed one per line, JOBS at a
# time. The caller sets RUNS (the runs folder), JOBS, PY (the Python interpreter) and the array
# SMALL (flags common to every run).

# grid_job NAME CONFIG DATASET SEED FLAGS...: one run in $RUNS/NAME, its log in $RUNS/NAME.log;
# skipped once it finished ($RUNS/NAME/DONE), resumed from its last checkpoint otherwise.
grid_job() {
  local name=$1 config=$2 data=$3 seed=$4 dir="$RUNS/$1"
  shift 4
  [ -f "$dir/DONE" ] && return 0
  local metrics=classifier_fid
  [[ $data == stacked_* ]] && metrics=classifier_fid,modes
  $PY main.py --config="configs/$config:$data" --workdir="$dir" "${SMALL[@]}" \
      --config.seed="$seed" --config.eval.metrics="$metrics" "$@" \
      > "$RUNS/$name.log" 2>&1 && touch "$dir/DONE"
}

# grid_run: runs the lines "NAME CONFIG DATASET SEED FLAGS..." of its input, JOBS at a time,
# and returns when all have ended.
grid_run() {
  mkdir -p "$RUNS"
  local name config data seed flags
  while read -r name config data seed flags; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
    # shellcheck disable=SC2086
    grid_job "$name" "$config" "$data" "$seed" $flags &
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
