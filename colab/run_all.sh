#!/usr/bin/env bash
# Executes the notebooks of this folder for real (not in smoke mode) and saves their outputs in
# place, as committed. Each runs in a kernel of its own, in this folder: its runs go to
# colab/runs/ (ignored by git), where a second execution resumes or reuses them.
#
#   colab/run_all.sh                      # all notebooks, one after the other
#   colab/run_all.sh began.ipynb          # some of them
#   PYTHON=/path/to/python colab/run_all.sh
#
# PYTHON (default: the checkout's .venv, `make install`) must have gan_jax's dependencies and
# nbclient and ipykernel (the "test" extras). This checkout's gan_jax comes first on the path,
# so the notebooks' install cells find it and install nothing. A failing cell stops the script
# and leaves that notebook as it was.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export GAN_JAX_SMOKE=0
unset GAN_JAX_SOURCE

cd "$here"
if [ "$#" -gt 0 ]; then
  notebooks=("$@")
else
  notebooks=(quickstart.ipynb stabilisers.ipynb began.ipynb evaluation.ipynb
    improved_techniques.ipynb cyclegan.ipynb)
fi
for notebook in "${notebooks[@]}"; do
  start=$(date +%s)
  echo "$(date '+%F %T') $notebook"
  # nbclient's `jupyter execute`: no cell time limit; the kernel's folder is the notebook's.
  "$python" -c 'from nbclient.cli import main; main()' --inplace --timeout=-1 "$notebook"
  # One output block per run of consecutive prints, as a live notebook shows them (nbclient
  # keeps every message apart): the same text in a fraction of the JSON.
  "$python" - "$notebook" <<'PY'
import sys

import nbformat

path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
for cell in notebook.cells:
  merged = []
  for output in cell.get("outputs", []):
    last = merged[-1] if merged else None
    if output.output_type == "stream" and last and last.output_type == "stream" and (
      last.name == output.name
    ):
      last.text += output.text
    else:
      merged.append(output)
  if cell.cell_type == "code":
    cell.outputs = merged
nbformat.write(notebook, path)
PY
  echo "$(date '+%F %T') $notebook done in $(( ($(date +%s) - start) / 60 )) min"
done
