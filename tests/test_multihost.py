"""Multi-process training: two processes with two CPU devices each train to the state of one
process with four devices (to the rounding of the all-reduces), only process 0 writes logs,
samples and configs, and a signal to one process stops both at the same step.

The processes are real ones (main.py in subprocesses), connected by jax.distributed through a
coordinator on a free localhost port, with XLA's CPU collectives between them.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from absl.testing import flagsaver
from PIL import Image

from gan_jax import checkpoint, configs, train
from gan_jax import spec as spec_lib
from gan_jax.cli import train as train_cli
from tests.test_cli_errors import assert_one_error, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4  # the smoke config logs at 2 and 4, samples at 3 and 4, checkpoints at 3 and 4
TIMEOUT = 300


def _cpu_collectives_available() -> bool:
  from jax._src.lib import _jax  # pylint: disable=g-import-not-at-top

  return hasattr(_jax, "make_gloo_tcp_collectives")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
  """This process's environment on `devices` fake CPU devices, with its other XLA flags (the
  tests' compile settings) kept."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop(train_cli.TRACEBACK_ENV, None)
  flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
  return env


def _start(workdir, devices: int, *extra: str, steps: int = STEPS, stdout=subprocess.PIPE):
  return subprocess.Popen(
    [
      sys.executable,
      "main.py",
      "--config=configs/dcgan.py:smoke",
      f"--config.train.steps={steps}",
      f"--workdir={workdir}",
      *extra,
    ],
    cwd=ROOT,
    env=_env(devices),
    stdout=stdout,
    stderr=subprocess.PIPE,
    text=True,
  )


def _finish(processes: dict[str, subprocess.Popen]) -> dict[str, str]:
  """Waits for all `processes`; their stdout by name. Fails with every process's stderr if
  one fails or they run past TIMEOUT (all are killed then)."""
  deadline = time.monotonic() + TIMEOUT
  outputs = {}
  try:
    for name, p in processes.items():
      outputs[name] = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
  except subprocess.TimeoutExpired:
    for p in processes.values():
      p.kill()
    pytest.fail(f"multi-process training ran past {TIMEOUT} s")
  failed = {n: out for n, out in outputs.items() if processes[n].returncode != 0}
  assert not failed, "\n".join(
    f"--- {n} (exit {processes[n].returncode}):\n{err[-3000:]}" for n, (_, err) in failed.items()
  )
  return {n: out for n, (out, _) in outputs.items()}


def _final_state(workdir):
  """The TrainState of the last checkpoint in `workdir`, restored on this process's devices."""
  config = configs.get("dcgan", "smoke")
  config.train.steps = STEPS
  spec = spec_lib.build_spec(config)
  checkpoints = checkpoint.Checkpointer(
    os.path.join(workdir, "checkpoints"), keep=3, config=checkpoint.config_to_dict(config)
  )
  assert checkpoints.latest_step() == STEPS
  try:
    state = checkpoints.restore(train.abstract_state(spec, config.seed))
  finally:
    checkpoints.close()
  return jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]


def _metrics(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.skipif(
  not _cpu_collectives_available(), reason="this jaxlib has no CPU collectives (gloo)"
)
def test_two_processes_train_like_one(tmp_path):
  multi, single = tmp_path / "two_processes", tmp_path / "one_process"
  address = f"--coordinator_address=localhost:{_free_port()}"
  # All at once: the two processes wait for each other at every step, the third fills the gaps.
  outputs = _finish(
    {
      "process 0": _start(multi, 2, address, "--num_processes=2", "--process_id=0"),
      "process 1": _start(multi, 2, address, "--num_processes=2", "--process_id=1"),
      "one process": _start(single, 4),
    }
  )
  assert "on 4 devices (cpu) in 2 processes" in outputs["process 0"]
  assert "gan_jax:" not in outputs["process 1"]  # its progress is process 0's to report

  # The union of the processes' rows is the one-process batch, in its order, so the state is
  # that of the one process up to the order in which the all-reduces add the four devices'
  # gradients and batch statistics: XLA's in-process all-reduce and Gloo's all-reduce across
  # processes add them in different orders. That changes the last bits (measured: at most
  # 2e-7 of a leaf's largest value after 4 steps), hence a tolerance of 1e-5 of each leaf's
  # largest value. (With one device per process against one process of two devices, two
  # addends, whose sum does not depend on the order, the states are bit-identical.)
  got, want = _final_state(multi), _final_state(single)
  assert [path for path, _ in got] == [path for path, _ in want]
  for (path, a), (_, b) in zip(got, want):
    scale = float(np.max(np.abs(b))) if np.size(b) else 0.0
    np.testing.assert_allclose(
      a, b, rtol=0, atol=1e-5 * scale + 1e-12, err_msg=jax.tree_util.keystr(path)
    )

  # Written by process 0 alone: a second writer would repeat each line, add an event file, ...
  records = _metrics(multi)
  assert [r["step"] for r in records] == [2, 4]
  for r, s in zip(records, _metrics(single)):
    assert set(r) == set(s)
    for k in r:
      if not k.startswith("perf/"):
        assert r[k] == pytest.approx(s[k], rel=1e-4, abs=1e-6), k
  assert len(os.listdir(multi / "tensorboard")) == 1
  assert sorted(os.listdir(multi / "configs")) == ["config_step0000000.json"]
  pngs = sorted(os.listdir(multi / "samples"))
  assert pngs == ["step_0000003.png", "step_0000004.png"]
  for name in pngs:
    a, b = (np.asarray(Image.open(d / "samples" / name), np.int16) for d in (multi, single))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1  # uint8 rounding of the same values


@pytest.mark.skipif(
  not _cpu_collectives_available(), reason="this jaxlib has no CPU collectives (gloo)"
)
def test_a_signal_to_one_process_stops_both_at_one_step(tmp_path):
  """SIGTERM to process 1 alone: both processes save the checkpoint of one step together and
  exit with 143, naming that step."""
  workdir = tmp_path / "run"
  flags = [
    "--config.train.log_every=1",
    "--config.train.sample_every=0",
    "--config.train.checkpoint_every=1000",
    f"--coordinator_address=localhost:{_free_port()}",
    "--num_processes=2",
  ]
  processes = {
    f"process {i}": _start(
      workdir, 2, *flags, f"--process_id={i}", steps=100000, stdout=subprocess.DEVNULL
    )
    for i in range(2)
  }
  try:
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + TIMEOUT
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
      assert time.monotonic() < deadline, "training did not start"
      assert all(p.poll() is None for p in processes.values()), "a process exited early"
      time.sleep(0.05)
    processes["process 1"].send_signal(signal.SIGTERM)
    errors = {n: p.communicate(timeout=120)[1] for n, p in processes.items()}
  finally:
    for p in processes.values():
      if p.poll() is None:
        p.kill()
        p.wait()
  steps = set()
  for name, p in processes.items():
    assert p.returncode == 143, f"{name}: {errors[name][-3000:]}"
    last = errors[name].strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted: SIGTERM at step (\d+); checkpoint saved in .*", last)
    assert match, f"{name}: {last}"
    steps.add(int(match.group(1)))
  assert len(steps) == 1, steps
  assert str(steps.pop()) in os.listdir(workdir / "checkpoints")


def _distributed_args(**flags):
  """`train_cli.distributed_args()` with `flags` set and the other multi-process flags unset."""
  unset = dict(distributed=False, coordinator_address=None, num_processes=None, process_id=None)
  with flagsaver.flagsaver(**{**unset, **flags}):
    return train_cli.distributed_args()


@pytest.mark.parametrize(
  "flags,fragment",
  [
    (dict(process_id=1), "--process_id=1 needs --num_processes"),
    (dict(num_processes=2, process_id=2), "--process_id=2 must be in 0 ... 1"),
    (dict(num_processes=2, process_id=-1), "--process_id=-1 must be in 0 ... 1"),
    (dict(num_processes=0), "--num_processes=0 must be at least 1"),
    (dict(coordinator_address=""), "--coordinator_address is empty"),
  ],
)
def test_bad_distributed_flags(flags, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    _distributed_args(**flags)


def test_distributed_flags():
  assert _distributed_args() is None  # one process
  assert _distributed_args(distributed=True) == {}  # all detected by JAX
  given = dict(coordinator_address="host0:1234", num_processes=2, process_id=1)
  assert _distributed_args(**given) == given  # implies --distributed
  assert _distributed_args(num_processes=4) == dict(num_processes=4)


def test_bad_distributed_flags_end_the_cli(tmp_path):
  result = run_main(
    "--config=configs/dcgan.py:smoke",
    f"--workdir={tmp_path / 'run'}",
    "--num_processes=2",
    "--process_id=5",
  )
  assert result.returncode == 2, result.stderr
  assert_one_error(result.stderr, "--process_id=5 must be in 0 ... 1")
  assert not (tmp_path / "run").exists()
