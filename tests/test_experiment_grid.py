"""experiments/grid.sh: runs listed jobs JOBS at a time, each pinned to its own cores, skips
finished ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for the Python interpreter: records its arguments and the cores it may run on,
# stays alive a moment so that jobs overlap, and succeeds.
_FAKE_PYTHON = textwrap.dedent(
  """\
  #!/usr/bin/env bash
  echo "args $*"
  echo "malloc ${MALLOC_MMAP_MAX_:-unset} ${MALLOC_TRIM_THRESHOLD_:-unset}"
  grep Cpus_allowed_list /proc/self/status | awk '{print "cpus " $2}'
  for a in "$@"; do
    case $a in --workdir=*) mkdir -p "${a#--workdir=}" ;; esac
  done
  sleep 0.5
  """
)


# The environment of the grid, without malloc settings of the caller's (grid.sh sets its own).
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


def _run_grid(tmp_path, jobs: int, lines: str, env: dict[str, str] | None = None) -> str:
  fake = tmp_path / "python"
  fake.write_text(_FAKE_PYTHON)
  fake.chmod(0o755)
  runs = tmp_path / "runs"
  script = (
    f"cd {_ROOT} && source experiments/grid.sh && RUNS={runs} JOBS={jobs} PY={fake} "
    f"&& SMALL=(--config.train.steps=1) && grid_run <<'EOF'\n{lines}EOF\n"
  )
  subprocess.run(
    ["bash", "-c", script],
    check=True,
    timeout=120,
    env={**_ENV, "GRID_POLL_S": "0.1", **(env or {})},
  )
  return str(runs)


def _log(runs: str, name: str) -> dict[str, str]:
  with open(os.path.join(runs, f"{name}.log"), encoding="utf-8") as f:
    return dict(line.rstrip("\n").split(" ", 1) for line in f)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_jobs_run_once_each_with_their_flags_and_finished_ones_are_skipped(tmp_path):
  lines = "a dcgan.py mnist 0\nb dcgan.py mnist 1 --config.x=2\n"
  runs = _run_grid(tmp_path, 1, lines)
  for name in ("a", "b"):
    assert os.path.exists(os.path.join(runs, name, "DONE"))
  args = _log(runs, "b")["args"]
  assert args.startswith("main.py --config=configs/dcgan.py:mnist ")
  assert "--config.seed=1" in args and args.endswith("--config.x=2")
  # glibc keeps freed memory in the process (no page faults at every iteration).
  assert _log(runs, "b")["malloc"] == "0 -1"
  # One job at a time: nothing pinned.
  assert _log(runs, "a")["cpus"] == _log(runs, "b")["cpus"]
  os.remove(os.path.join(runs, "a.log"))
  _run_grid(tmp_path, 1, lines)
  assert not os.path.exists(os.path.join(runs, "a.log"))  # DONE: skipped


@pytest.mark.skipif(
  shutil.which("taskset") is None or (os.cpu_count() or 1) < 2, reason="needs taskset, 2 cores"
)
def test_parallel_jobs_get_disjoint_cores(tmp_path):
  cores = len(os.sched_getaffinity(0))
  if cores < 2 or cores != os.cpu_count():
    pytest.skip("this process is itself restricted to some cores")
  per = cores // 2
  lines = "".join(f"j{i} dcgan.py mnist {i}\n" for i in range(4))
  runs = _run_grid(tmp_path, 2, lines)
  cpus = [_log(runs, f"j{i}")["cpus"] for i in range(4)]
  slot = [f"0-{per - 1}" if per > 1 else "0", f"{per}-{2 * per - 1}" if per > 1 else f"{per}"]
  # The first two jobs take the two slots; each later one takes the slot freed first.
  assert sorted(cpus[:2]) == sorted(slot)
  assert all(c in slot for c in cpus)
  # Turned off: every job may run anywhere.
  (tmp_path / "off").mkdir()
  runs = _run_grid(tmp_path / "off", 2, lines, env={"GRID_PIN": "0"})
  assert {_log(runs, f"j{i}")["cpus"] for i in range(4)} == {f"0-{cores - 1}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_table1_script_lists_its_runs_with_the_seeds_asked_for(tmp_path):
  def names(*args: str) -> list[str]:
    out = subprocess.run(
      ["bash", os.path.join(_ROOT, "experiments/semi_supervised.sh"), "--list", str(tmp_path)]
      + list(args),
      check=True,
      capture_output=True,
      text=True,
      timeout=60,
      env=_ENV,
    ).stdout
    return [line.split(" ", 1)[0] for line in out.splitlines()]

  others = ["mnist_n50_s0", "mnist_n200_s0", "mnist_n100_supervised_s0", "fashion_mnist_n100_s0"]
  # Defaults: seeds 0, 1, 2 at 100 labels, seed 0 at 20 labels.
  assert names() == [f"mnist_n100_s{s}" for s in range(3)] + ["mnist_n20_s0"] + others
  assert names("4", "2", "300", "0 1") == ["mnist_n100_s4", "mnist_n20_s0", "mnist_n20_s1"] + others
  # An empty seed list leaves those runs out (the others can run first).
  assert names("", "2", "300", "") == others
  assert names("0", "1", "300", "") == ["mnist_n100_s0"] + others
  # Listing trains nothing.
  assert os.listdir(tmp_path) == []
