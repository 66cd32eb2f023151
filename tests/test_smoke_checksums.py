"""Behaviour is preserved: each smoke config's state after 5 iterations equals the fixture
(tests/fixtures/make_smoke_checksums.py), which was recorded from the code before the core was
restructured (the commit named in the fixture).

On a host like the recording one (same JAX build, machine and CPU features) every leaf must be
bit-identical. XLA's CPU code differs in the last bits between CPU generations and builds, so
elsewhere each leaf's statistics (sum, sum of |x|, four elements) must agree to a relative
1e-4: a changed random draw, term or order of updates moves them by far more. Each run is a
process of its own with one CPU device, as the fixture's were: the test process has four fake
devices, and XLA splits a CPU's threads between them, which changes the last bits. The
fixture's runs are compiled without XLA's backend optimisation (the flags are part of the
recorded host).

Each run also stands for the end-to-end run of its config: its outputs (log, samples,
TensorBoard, checkpoint, config.json) are checked too.
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.fixtures import make_smoke_checksums as fixture

PATH = os.path.join(os.path.dirname(__file__), "fixtures", "smoke_checksums.json")
with open(PATH, encoding="utf-8") as _f:
  RECORD = json.load(_f)
SAME_HOST = RECORD["host"] == fixture.host()


def test_fixture_covers_every_config():
  from gan_jax import configs

  assert set(configs.names()) <= {name for name, _ in fixture.RUNS.values()}
  assert set(RECORD["runs"]) == set(fixture.RUNS)


@pytest.mark.parametrize("name", sorted(fixture.RUNS))
def test_final_state_equals_the_fixture(name, tmp_path):
  """Each run also checks the trainer's outputs end to end: the log line, sample grid,
  TensorBoard file, checkpoint and config of its last step."""
  out = tmp_path / "checksums.json"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  subprocess.run(
    [sys.executable, fixture.__file__, f"--runs={name}", f"--out={out}", f"--workdir={tmp_path}"],
    check=True,
    env={**env, "JAX_PLATFORMS": "cpu"},
    capture_output=True,
  )
  got = json.loads(out.read_text())["runs"][name]
  expected = RECORD["runs"][name]
  assert sorted(got) == sorted(expected)
  if SAME_HOST:
    differ = sorted(k for k in expected if got[k]["sha256"] != expected[k]["sha256"])
    assert not differ, f"{len(differ)} leaves are not bit-identical, e.g. {differ[:3]}"
  else:
    for leaf, want in expected.items():
      have = got[leaf]
      for stat in ("sum", "abs_sum", "values"):
        np.testing.assert_allclose(
          have[stat], want[stat], rtol=1e-4, atol=1e-6, err_msg=f"{name}: {leaf} {stat}"
        )
  _assert_outputs(tmp_path / name, *fixture.RUNS[name])


def _assert_outputs(workdir, config_name, overrides):
  """The outputs of a run of fixture.STEPS steps that logs, samples and saves at its end."""
  steps = fixture.STEPS
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [steps]
  assert {"d/loss", "g/loss", "d/grad_norm", "g/param_norm", "perf/steps_per_sec"} <= set(
    records[0]
  )
  assert all(np.isfinite(v) for v in records[0].values())
  assert os.listdir(workdir / "samples") == [f"step_{steps:07d}.png"]
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
  assert os.listdir(workdir / "checkpoints") == [str(steps)]
  config = json.loads((workdir / "config.json").read_text())
  expected = fixture.run_config(config_name, overrides)
  assert config["train"]["steps"] == steps
  assert config.get("stabilisers") == expected.get("stabilisers")
  if "objective" in expected:  # the semi-supervised game's losses are its own
    assert config["objective"]["name"] == expected.objective.name
