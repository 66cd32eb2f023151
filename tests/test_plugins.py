"""Plug-in modules (--plugins): a user's objective trains through main.py, the run's
config.json records it, and the evaluation CLI imports it from there."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np

from gan_jax.metrics import classifiers

ROOT = pathlib.Path(__file__).resolve().parent.parent

HINGE_PLUGIN = textwrap.dedent('''
    """The hinge loss (Lim & Ye 2017), registered from outside the package."""

    import jax
    import jax.numpy as jnp

    from gan_jax.core.terms import Term
    from gan_jax.objectives import OBJECTIVES, Objective


    def hinge_discriminator_loss(*, d_real, d_fake):
      loss = jnp.mean(jax.nn.relu(1.0 - d_real)) + jnp.mean(jax.nn.relu(1.0 + d_fake))
      return loss, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}


    def hinge_generator_loss(*, d_fake):
      return -jnp.mean(d_fake), {}


    @OBJECTIVES.register("hinge_test")
    def _hinge(cfg):
      del cfg
      return Objective(discriminator=(Term("adv", hinge_discriminator_loss),),
                       generator=(Term("adv", hinge_generator_loss),))
''')


def _env(tmp_path, plugin_path: bool = True) -> dict[str, str]:
  """The environment of a CLI subprocess: CPU, a private cache and, if asked, the folder of
  the plug-in on PYTHONPATH."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", GAN_JAX_CACHE=str(tmp_path / "cache"))
  paths = [str(tmp_path / "plugins")] if plugin_path else []
  paths += [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
  env["PYTHONPATH"] = os.pathsep.join(paths)
  return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


def _write_plugin(tmp_path) -> None:
  (tmp_path / "plugins").mkdir()
  (tmp_path / "plugins" / "hinge_plugin.py").write_text(HINGE_PLUGIN, encoding="utf-8")


def _cache_random_digits_classifier(tmp_path, monkeypatch) -> None:
  """The digits classifier the evaluation reads, randomly initialised: the test is about
  finding the run's objective, not about the metric's value."""
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  params = jax.jit(classifiers.ConvNet().init)(
    jax.random.PRNGKey(0), np.zeros((1, 16, 16, 1), np.float32)
  )["params"]
  classifiers.save("digits", jax.device_get(params), {"image_size": 16, "test_accuracy": None})


def test_plugin_objective_trains_and_the_run_evaluates_from_its_config(tmp_path, monkeypatch):
  _write_plugin(tmp_path)
  _cache_random_digits_classifier(tmp_path, monkeypatch)
  workdir = tmp_path / "run"
  train = _run(
    [
      "main.py",
      "--config=configs/dcgan.py:smoke",
      f"--workdir={workdir}",
      "--plugins=hinge_plugin",
      "--config.objective.name=hinge_test",
      "--config.train.steps=2",
    ],
    _env(tmp_path),
  )
  assert train.returncode == 0, train.stderr[-3000:]
  assert (workdir / "checkpoints" / "2").is_dir()
  lines = (workdir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
  last = json.loads(lines[-1])
  assert last["step"] == 2 and np.isfinite(last["d/loss"]), last
  config = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
  assert config["plugins"] == "hinge_plugin"
  assert config["objective"]["name"] == "hinge_test"

  # No --plugins: the evaluation imports what config.json records.
  evaluate = [
    "-m",
    "gan_jax.cli.evaluate",
    f"--workdir={workdir}",
    "--metrics=classifier_fid",
    "--num_samples=16",
    "--reference_samples=64",
  ]
  result = _run(evaluate, _env(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(result.stdout.strip().splitlines()[-1])
  assert record["step"] == 2 and record["eval/classifier_fid"] >= 0, record

  # A recorded plug-in that is not importable is named in a one-line error.
  missing = _run(evaluate, _env(tmp_path, plugin_path=False))
  assert missing.returncode == 2
  error = missing.stderr.strip().splitlines()
  assert error[-1].startswith("error: ") and "hinge_plugin" in error[-1], missing.stderr
  assert "config.json" in error[-1] and not missing.stdout.strip()


def test_unknown_plugin_is_a_one_line_error(tmp_path):
  for args in (
    [
      "main.py",
      "--config=configs/dcgan.py:smoke",
      f"--workdir={tmp_path / 'run'}",
      "--plugins=no_such_plugin_module",
    ],
    [
      "-m",
      "gan_jax.cli.evaluate",
      f"--workdir={tmp_path / 'run'}",
      "--plugins=no_such_plugin_module",
    ],
  ):
    result = _run(args, _env(tmp_path, plugin_path=False))
    assert result.returncode == 2, (args, result.stderr[-3000:])
    assert result.stderr.strip().splitlines() == [
      "error: --plugins: cannot import 'no_such_plugin_module': No module named "
      "'no_such_plugin_module'"
    ], result.stderr
    assert not (tmp_path / "run").exists()
