"""End-to-end runs of every config, checkpoint resume, and bad input."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import spec as spec_lib
from gan_jax import train
from gan_jax.core.registry import ConfigError
from tests.utils import smoke_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# JAX's monitoring event for each XLA compilation.
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


def test_resume_is_bit_identical(tmp_path):
  """6 steps in one go == 3 steps, stop, resume, 3 more steps (same parameters, bit for bit)."""
  config = smoke_config("dcgan", train__checkpoint_every=3)
  full = jax.device_get(train.train_and_evaluate(config, str(tmp_path / "full")))
  half = smoke_config("dcgan", train__steps=3)
  train.train_and_evaluate(half, str(tmp_path / "split"))
  resumed = jax.device_get(train.train_and_evaluate(config, str(tmp_path / "split")))
  chex.assert_trees_all_equal(resumed, full)


def test_checkpoints_are_orbax_standard_ones_written_by_one_replica(tmp_path):
  """The state's handler writes each replicated array once, without orbax's per-shape slicing
  programs, in StandardSave's format: either kind of checkpoint restores with the other."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(
    {"w": np.arange(6.0).reshape(2, 3), "n": {"k": np.ones(4, np.int32)}}, replicated
  )
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  meta = {"config": {}, "signature": checkpoint_lib.state_signature(state)}
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), 3, {})
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
    lambda event, *_, **__: compiles.append(event) if event == _BACKEND_COMPILE else None
  )
  checkpointer.save(1, state)
  checkpointer.wait()
  assert not compiles  # replica-parallel saving compiled one jax.lax.slice_in_dim per shape
  standard = ocp.CheckpointManager(str(tmp_path))
  restored = standard.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  chex.assert_trees_all_equal(restored["state"], state)
  standard.save(
    2,
    args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
  )
  standard.wait_until_finished()
  restored = checkpoint_lib.Checkpointer(str(tmp_path), 3, {}).restore(abstract, 2)
  chex.assert_trees_all_equal(restored, state)
  assert restored["w"].sharding == replicated


def test_partial_checkpoint_is_ignored(tmp_path):
  """A save interrupted before orbax's final rename leaves only a temporary folder."""
  config = smoke_config("dcgan", train__steps=3)
  train.train_and_evaluate(config, str(tmp_path))
  partial = tmp_path / "checkpoints" / "5.orbax-checkpoint-tmp-1234"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "garbage").write_text("half written")
  config = smoke_config("dcgan")
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 6
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "6"]


def test_killed_run_resumes_from_last_complete_checkpoint(tmp_path):
  """SIGKILL a training process while it saves a checkpoint every step, then resume; the
  metrics it logged up to its last checkpoint are on disk."""
  workdir = tmp_path / "run"
  cmd = [
    sys.executable,
    os.path.join(ROOT, "main.py"),
    "--config=configs/dcgan.py:smoke",
    f"--workdir={workdir}",
    "--config.train.steps=400",
    "--config.train.checkpoint_every=1",
    "--config.train.keep_checkpoints=2",
    "--config.train.sample_every=1000",
    "--config.train.log_every=1",
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  proc = subprocess.Popen(
    cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
  )
  try:
    deadline = time.time() + 120
    ckpt = workdir / "checkpoints"
    while time.time() < deadline:
      if ckpt.exists() and len([p for p in os.listdir(ckpt) if p.isdigit()]) >= 2:
        break
      assert proc.poll() is None, "training process exited early"
      time.sleep(0.05)
    time.sleep(0.3)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  steps = [int(p) for p in os.listdir(workdir / "checkpoints") if p.isdigit()]
  assert steps, "no checkpoint was completed before the kill"
  with open(workdir / "metrics.jsonl", encoding="utf-8") as f:
    logged = {json.loads(line)["step"] for line in f if line.endswith("\n")}
  assert logged >= set(range(1, max(steps) + 1))
  config = smoke_config(
    "dcgan", train__steps=max(steps) + 2, train__checkpoint_every=1, train__keep_checkpoints=2
  )
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == max(steps) + 2


def test_incompatible_config_is_refused_and_nothing_is_overwritten(tmp_path):
  config = smoke_config("dcgan", train__steps=3)
  train.train_and_evaluate(config, str(tmp_path))
  before = {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "**"), recursive=True)}
  wider = smoke_config("dcgan", model__width=16)
  with pytest.raises(ConfigError, match=r"incompatible config.*model\.width: 8 -> 16"):
    train.train_and_evaluate(wider, str(tmp_path))
  after = {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "**"), recursive=True)}
  assert before == after


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
  config = smoke_config("dcgan", train__steps=3)
  train.train_and_evaluate(config, str(tmp_path))
  config = smoke_config("dcgan")
  config.optim.discriminator.learning_rate = float("nan")
  with pytest.raises(train.NonFiniteError, match=r"non-finite d/\w+ = nan at step 4.*step 3"):
    train.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]
  spec = spec_lib.build_spec(config)
  checkpoints = checkpoint_lib.Checkpointer(
    str(tmp_path / "checkpoints"), keep=3, config=checkpoint_lib.config_to_dict(config)
  )
  restored = checkpoints.restore(train.abstract_state(spec, config.seed))
  assert int(restored.step) == 3
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(restored.params)))


@pytest.mark.parametrize(
  "field,value,message",
  [
    (
      "objective__name",
      "hing",
      # (\w+, )* : names that plug-in tests register in the same process.
      r"unknown objective 'hing' \(config field objective.name\); "
      r"valid names: began, (\w+, )*lsgan, minimax, non_saturating, wgan, wgan_gp",
    ),
    ("model__name", "resnet", r"unknown model 'resnet' \(config field model.name\); valid"),
    ("data__source", "s3", r"unknown data source 's3' \(config field data.source\); valid"),
    (
      "model__init",
      "he",
      r"unknown initialiser 'he' \(config field model.init\); valid names: "
      r"normal, xavier",
    ),
    ("model__discriminator_norm", "group", r"model.discriminator_norm; valid: 'batch'"),
    ("model__z_dist", "cauchy", r"model.z_dist; valid: 'normal', 'uniform'"),
    ("train__batch_size", 6, r"train.batch_size=6 is not divisible by the 4 devices"),
  ],
)
def test_bad_config_values_name_the_field(field, value, message, tmp_path):
  config = smoke_config("dcgan", **{field: value})
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path))


def test_unknown_optimizer_names_the_field(tmp_path):
  config = smoke_config("dcgan")
  config.optim.generator.name = "lion"
  with pytest.raises(ConfigError, match=r"optim.generator.name.*adam, rmsprop, sgd"):
    train.train_and_evaluate(config, str(tmp_path))


def test_missing_dataset_says_how_to_get_it(tmp_path):
  config = smoke_config("dcgan", "fashion_mnist,smoke", data__path=str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_unknown_config_argument():
  with pytest.raises(ValueError, match="unknown config argument 'cifar100'.*cifar10"):
    smoke_config("dcgan", "cifar100")


def test_cpu_argument_sizes_the_headline_run_for_a_cpu():
  """`:cpu` (what `make train` picks without an accelerator) shrinks the networks, batch and
  length, keeps the lens' schedule relative to the run, and leaves the data as it was."""
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  from gan_jax.configs import presets  # pylint: disable=g-import-not-at-top

  paper, cpu = configs.get("wgan_gp_lens"), configs.get("wgan_gp_lens", "cpu")
  size = presets.CPU_SIZE
  assert (cpu.model.width, cpu.train.batch_size, cpu.train.steps) == (
    size["width"],
    size["batch_size"],
    size["steps"],
  )
  assert (cpu.lens.width, cpu.lens.blocks, cpu.lens.K) == (
    size["lens_width"],
    size["lens_blocks"],
    2 * size["steps"],
  )
  assert 2 * paper.train.steps == paper.lens.K  # the ratio the cpu size keeps
  assert cpu.train.steps < paper.train.steps and cpu.model.width < paper.model.width
  assert cpu.data.to_dict() == paper.data.to_dict()
  assert cpu.objective.to_dict() == paper.objective.to_dict()
  spec_lib.build_spec(cpu)  # valid
  stacked = configs.get("wgan_gp", "stacked_fashion_mnist,cpu")
  assert stacked.data.stacked and stacked.train.steps == size["steps"]


class _MeanBrightness:
  """A stand-in evaluator: the mean pixel value of the samples, higher is better."""

  best_metric, best_mode = "eval/brightness", "max"

  def __init__(self):
    self.calls = []

  def __call__(self, sample_fn, step):
    value = float(np.mean(sample_fn(8)))
    self.calls.append((step, value))
    return {"eval/brightness": value}


def test_evaluation_during_training_keeps_the_best_checkpoint(tmp_path, monkeypatch):
  evaluator = _MeanBrightness()
  monkeypatch.setattr(train.evaluation, "build_evaluator", lambda config, spec: evaluator)
  config = smoke_config("dcgan", eval__every=2)
  train.train_and_evaluate(config, str(tmp_path))
  assert [s for s, _ in evaluator.calls] == [2, 4, 6]
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  logged = {r["step"]: r["eval/brightness"] for r in records if "eval/brightness" in r}
  assert logged == dict(evaluator.calls)
  best_step = max(evaluator.calls, key=lambda c: c[1])[0]
  assert os.listdir(tmp_path / "checkpoints_best") == [str(best_step)]


def test_config_history_and_periods_of_zero(tmp_path):
  """Periods of 0 act only at the last step; each start or resume records its config in
  configs/, config.json is the latest, and a run with nothing to do or a bad input writes
  nothing."""
  config = smoke_config(
    "dcgan", train__steps=3, train__log_every=0, train__sample_every=0, train__checkpoint_every=0
  )
  train.train_and_evaluate(config, str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == ["3"]
  assert os.listdir(tmp_path / "samples") == ["step_0000003.png"]
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [3]

  resumed = smoke_config("dcgan", train__steps=5)
  train.train_and_evaluate(resumed, str(tmp_path))
  history = sorted(os.listdir(tmp_path / "configs"))
  assert history == ["config_step0000000.json", "config_step0000003.json"]
  first, second = (json.loads((tmp_path / "configs" / h).read_text()) for h in history)
  assert (first["train"]["steps"], second["train"]["steps"]) == (3, 5)
  assert json.loads((tmp_path / "config.json").read_text()) == second

  def snapshot():
    return {p: os.path.getmtime(p) for p in glob.glob(str(tmp_path / "**"), recursive=True)}

  before = snapshot()
  bad = smoke_config("dcgan", train__steps=8)
  bad.optim.generator.learning_rate = -1.0
  with pytest.raises(ConfigError, match="optim.generator.learning_rate"):
    train.train_and_evaluate(bad, str(tmp_path))
  assert snapshot() == before
  config_files = [p for p in before if "config" in os.path.basename(p)]
  train.train_and_evaluate(resumed, str(tmp_path))  # at step 5 already: nothing to train
  assert {p: os.path.getmtime(p) for p in config_files} == {p: before[p] for p in config_files}


def test_sigint_and_sigterm_save_a_checkpoint_and_the_run_resumes(tmp_path):
  """SIGINT (then SIGTERM on the resumed run) saves a checkpoint at the current step and
  exits within seconds with 130 (143) and one line naming the step; the next run resumes
  there."""
  workdir = tmp_path / "run"
  cmd = [
    sys.executable,
    os.path.join(ROOT, "main.py"),
    "--config=configs/dcgan.py:smoke",
    f"--workdir={workdir}",
    "--config.train.steps=100000",
    "--config.train.log_every=1",
    "--config.train.sample_every=0",
    "--config.train.checkpoint_every=1000",
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")

  def interrupt(sig, after_step):
    """Runs the command until metrics.jsonl logs `after_step`, then sends `sig`."""
    proc = subprocess.Popen(
      cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
      deadline = time.time() + 120
      metrics = workdir / "metrics.jsonl"
      while time.time() < deadline:
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if lines and json.loads(lines[-1])["step"] >= after_step:
          break
        assert proc.poll() is None, "training process exited early"
        time.sleep(0.05)
      proc.send_signal(sig)
      sent = time.time()
      _, err = proc.communicate(timeout=60)
      return proc.returncode, err, time.time() - sent
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.wait()

  code, err, seconds = interrupt(signal.SIGINT, 2)
  assert code == 130, err
  assert seconds < 10
  last = err.strip().splitlines()[-1]
  match = re.fullmatch(r"interrupted: SIGINT at step (\d+); checkpoint saved in .*", last)
  assert match, err
  step = int(match.group(1))
  assert step >= 2
  assert str(step) in os.listdir(workdir / "checkpoints")

  code, err, _ = interrupt(signal.SIGTERM, step + 2)
  assert code == 143, err
  assert f"resumed from step {step}" in err
  match = re.search(r"interrupted: SIGTERM at step (\d+);", err.strip().splitlines()[-1])
  assert match and int(match.group(1)) >= step + 2
  assert match.group(1) in os.listdir(workdir / "checkpoints")
  assert sorted(os.listdir(workdir / "configs")) == [
    "config_step0000000.json",
    f"config_step{step:07d}.json",
  ]


def test_config_json_of_a_run_without_history_is_kept(tmp_path):
  """A resume of a run that has only config.json (written before configs/ was kept) keeps
  that file as configs/config_before_step<N>.json."""
  (tmp_path / "config.json").write_text(json.dumps({"train": {"steps": 3}}))
  train.write_config(str(tmp_path), {"train": {"steps": 9}}, 3)
  assert sorted(os.listdir(tmp_path / "configs")) == [
    "config_before_step0000003.json",
    "config_step0000003.json",
  ]
  kept = json.loads((tmp_path / "configs" / "config_before_step0000003.json").read_text())
  assert kept == {"train": {"steps": 3}}
  assert json.loads((tmp_path / "config.json").read_text()) == {"train": {"steps": 9}}
  train.write_config(str(tmp_path), {"train": {"steps": 12}}, 9)
  assert len(os.listdir(tmp_path / "configs")) == 3
