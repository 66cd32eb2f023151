"""The semi-supervised K+1 GAN (Salimans et al. 2016, Sec. 5) against hand computations: its
losses, the labelled subset and batches, weight normalisation's data-dependent initialisation,
a training run that logs the test error, data parallelism and the CIFAR-10/SVHN nets."""

import importlib.util
import json
import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs, sampling, train
from gan_jax import data as data_lib
from gan_jax import spec as spec_lib
from gan_jax.core import parallel
from gan_jax.core.registry import ConfigError
from gan_jax.core.step import train_iteration
from gan_jax.evaluation import ClassificationEvaluator
from gan_jax.losses import semi_supervised as losses
from gan_jax.models.semi_supervised import MLPClassifier, WeightNorm
from gan_jax.optim import learning_rate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _softplus(x):
  return np.logaddexp(0.0, x)


def _lse(x):
  m = x.max(-1, keepdims=True)
  return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[:, 0]


# ----------------------------------------------------------------------------- losses


def test_losses_equal_their_definitions():
  rng = np.random.default_rng(0)
  lab, unl, fake = (rng.normal(0, 3, (16, 10)) for _ in range(3))
  labels = rng.integers(0, 10, 16)

  sup, m = losses.supervised_loss(logits_labelled=jnp.asarray(lab), labels=jnp.asarray(labels))
  # −log softmax(l)_y by hand.
  expected = np.mean(_lse(lab) - lab[np.arange(16), labels])
  np.testing.assert_allclose(sup, expected, rtol=1e-5)
  np.testing.assert_allclose(m["error"], np.mean(lab.argmax(-1) != labels))

  for half in (True, False):
    unsup, m = losses.unsupervised_loss(
      logits_unlabelled=jnp.asarray(unl), logits_fake=jnp.asarray(fake), half_weights=half
    )
    # −E log D(x) − E log(1 − D(G(z))), D = Z / (Z + 1).
    d_real = np.exp(_lse(unl)) / (np.exp(_lse(unl)) + 1)
    d_fake = np.exp(_lse(fake)) / (np.exp(_lse(fake)) + 1)
    expected = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
    np.testing.assert_allclose(unsup, (0.5 if half else 1.0) * expected, rtol=1e-5)
    np.testing.assert_allclose(m["d_real"], d_real.mean(), rtol=1e-5)
    np.testing.assert_allclose(m["d_fake"], d_fake.mean(), rtol=1e-5)
    # The released code's form: −½ E s(x) + ½ E softplus(s(x)) + ½ E softplus(s(G(z))).
    if half:
      released = (
        0.5 * (-_lse(unl) + _softplus(_lse(unl))).mean() + 0.5 * _softplus(_lse(fake)).mean()
      )
      np.testing.assert_allclose(unsup, released, rtol=1e-5)


def test_fixed_zero_fake_logit():
  """The K logits with a (K+1)-th logit fixed at 0: D(x) = Z/(Z+1) = 1 − p(fake), and the
  supervised loss is the K+1 cross-entropy conditioned on y ≤ K."""
  rng = np.random.default_rng(1)
  logits = rng.normal(0, 2, (8, 10))
  full = np.concatenate([logits, np.zeros((8, 1))], axis=1)
  p_full = np.exp(full) / np.exp(full).sum(-1, keepdims=True)
  z = np.exp(logits).sum(-1)
  np.testing.assert_allclose(losses.real_probability(jnp.asarray(logits)), z / (z + 1), rtol=1e-5)
  np.testing.assert_allclose(
    losses.real_probability(jnp.asarray(logits)), 1 - p_full[:, -1], rtol=1e-5
  )
  labels = rng.integers(0, 10, 8)
  sup, _ = losses.supervised_loss(logits_labelled=jnp.asarray(logits), labels=jnp.asarray(labels))
  conditional = p_full[np.arange(8), labels] / p_full[:, :10].sum(-1)
  np.testing.assert_allclose(sup, -np.log(conditional).mean(), rtol=1e-5)


# ----------------------------------------------------------------------------- data


def _labels(n=600, k=10, seed=0):
  return np.random.default_rng(seed).integers(0, k, n)


def test_labelled_subset_is_balanced_and_a_function_of_the_seed():
  labels = _labels()
  a = data_lib.balanced_subset(labels, 50, seed=3)
  assert len(a) == len(set(a)) == 50
  assert np.array_equal(np.bincount(labels[a], minlength=10), np.full(10, 5))
  np.testing.assert_array_equal(a, data_lib.balanced_subset(labels, 50, seed=3))
  assert set(a) != set(data_lib.balanced_subset(labels, 50, seed=4))
  with pytest.raises(ConfigError, match="multiple of the 10 classes"):
    data_lib.balanced_subset(labels, 15, seed=3)


def _source(n=300, k=10):
  rng = np.random.default_rng(5)
  images = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
  return data_lib.ArraySource(images, np.arange(n) % k)


def test_semi_supervised_batches_are_deterministic_and_resumable():
  source = _source()
  make = lambda **kw: data_lib.SemiSupervisedBatches(source, 10, 7, 20, **kw)
  first, again = make(), make()
  assert first.per_epoch == 30
  sequential = [first.iteration(t, 1) for t in range(65)]
  # A fresh object at step 64 (a resumed run) reads the same batch as the 65th in sequence.
  chex.assert_trees_all_equal(again.iteration(64, 1), sequential[64])
  batch = sequential[3]
  assert batch["image"].shape == batch["image_g"].shape == batch["labelled_image"].shape
  assert batch["image"].shape == (1, 10, 4, 4, 1) and batch["labelled_label"].shape == (1, 10)
  assert not np.array_equal(batch["image"], batch["image_g"])  # independent orders
  # Labelled images carry their labels, come from the subset, and each appears equally often
  # in an unlabelled epoch (30 batches of 10 = 15 copies of the 20 labelled examples).
  idx = np.concatenate([first.labelled_indices(t) for t in range(30)])
  assert set(idx) == set(first.labelled)
  assert np.array_equal(np.bincount(idx, minlength=300)[first.labelled], np.full(20, 15))
  for t in (0, 31):
    rows = first.labelled_indices(t)
    np.testing.assert_array_equal(sequential[t]["labelled_image"][0], source.images[rows])
    np.testing.assert_array_equal(sequential[t]["labelled_label"][0], source.labels[rows])
  # Each process reads its rows of the same global batch.
  parts = [make(process_index=i, process_count=2).iteration(40, 1) for i in range(2)]
  for key in batch:
    np.testing.assert_array_equal(
      np.concatenate([p[key] for p in parts], axis=1), sequential[40][key]
    )


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_weight_norm_data_dependent_init(kind):
  """Salimans & Kingma 2016, Sec. 2.2: on the init batch every pre-activation has zero mean
  and standard deviation init_scale."""
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 12) if kind == "dense" else (16, 6, 6, 3))
  x = 3.0 * x + 1.0
  for scale in (1.0, 0.1):
    layer = WeightNorm(7, kind=kind, init_scale=scale)
    variables = layer.init(jax.random.PRNGKey(1), x, data_init=True)
    y = np.asarray(layer.apply(variables, x))
    axes = tuple(range(y.ndim - 1))
    np.testing.assert_allclose(y.mean(axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axes), scale, rtol=1e-4)


def test_mlp_classifier_init_is_sequential():
  """Each layer is initialised on the output of the already initialised layers below, so the
  logits on the init batch are standardised too (inference mode: no noise)."""
  x = jax.random.uniform(jax.random.PRNGKey(2), (200, 8, 8, 1), minval=-1, maxval=1)
  net = MLPClassifier(hidden=(32, 16), num_classes=10)
  variables = net.init(jax.random.PRNGKey(3), x, train=False, data_init=True)
  logits = np.asarray(net.apply(variables, x, train=False))
  np.testing.assert_allclose(logits.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(logits.std(0), 1.0, rtol=1e-4)
  # Training mode draws noise from the "noise" collection.
  noisy = net.apply(variables, x, train=True, rngs={"noise": jax.random.PRNGKey(4)})
  assert not np.allclose(noisy, logits)


# ----------------------------------------------------------------------------- configs


def test_configs_follow_the_released_code():
  mnist = configs.get("semi_supervised")
  assert mnist.train.steps == 300 * 600 and mnist.data.image_size == 28
  assert mnist.optim.discriminator.learning_rate == 0.003 and mnist.optim.generator.b1 == 0.5
  assert mnist.train.ema_decay == 0.9999 and mnist.eval.metrics == "test_error"
  cifar = configs.get("semi_supervised", "cifar10")
  assert cifar.train.steps == 1200 * 500 and cifar.data.num_labels == 4000
  assert tuple(cifar.model.discriminator_widths) == (96, 192)
  svhn = configs.get("semi_supervised", "svhn")
  assert tuple(svhn.model.discriminator_widths) == (64, 128) and svhn.data.num_labels == 1000
  lr = learning_rate(cifar.optim.discriminator.to_dict())
  np.testing.assert_allclose(
    [lr(0), lr(400 * 1000 - 1), lr(500 * 1000), lr(600 * 1000)], [3e-4, 3e-4, 1.5e-4, 0.0]
  )
  sup = configs.get("semi_supervised", "supervised_only,smoke")
  spec = spec_lib.build_spec(sup, mesh=parallel.make_mesh(1))
  assert [p.name for p in spec.phases] == ["d"]
  assert [t.name for t in spec.phases[0].terms] == ["sup"]
  with pytest.raises(ValueError, match="invalid config argument"):
    configs.get("semi_supervised", "mnist,cifar10")


# ----------------------------------------------------------------------------- training


def test_smoke_run_logs_the_test_error(tmp_path):
  config = configs.get("semi_supervised", "smoke")
  config.eval.every = 3
  train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  final = records[-1]
  assert final["step"] == 6
  assert 0.0 <= final["eval/test_error"] <= 1.0 and final["eval/uses_ema"] == 1.0
  assert final["eval/test_examples"] == 360  # the whole test split of the digits
  assert final["eval/test_errors"] == round(final["eval/test_error"] * 360)
  assert {"eval/test_error_current", "eval/test_error_ema"} <= set(final)
  assert [r["step"] for r in records if "eval/test_error" in r] == [3, 6]
  logged = next(r for r in records if "d/loss" in r)
  assert {"d/sup", "d/sup/error", "d/unsup/d_real", "d/unsup/d_fake", "g/fm"} <= set(logged)
  # The evaluation CLI restores the last checkpoint and counts the same test errors.
  from gan_jax.cli import evaluate  # pylint: disable=g-import-not-at-top

  record = evaluate.evaluate_run(str(tmp_path), confusion=True)
  assert record["step"] == 6
  for name in ("eval/test_errors", "eval/test_error_ema", "eval/test_error_current"):
    assert record[name] == final[name], name
  # Its confusion matrices: rows are the test split's classes, the off-diagonal entries the
  # errors of each parameter set.
  labels = ClassificationEvaluator.from_config(
    config, {"classifier_params": "ema", "best_metric": ""}
  ).labels
  assert set(record["confusion"]) == {"ema", "current"}
  for name, matrix in record["confusion"].items():
    matrix = np.asarray(matrix)
    assert matrix.shape == (10, 10)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(labels, minlength=10))
    errors = matrix.sum() - np.trace(matrix)
    assert errors == round(record[f"eval/test_error_{name}"] * 360), name
  # experiments/semi_supervised_errors.py draws the largest of them.
  script = _errors_script()
  out = tmp_path / "errors.png"
  result = script.main([str(tmp_path), "--top=3", f"--out={out}"])
  ema = np.asarray(record["confusion"]["ema"])
  assert result["step"] == 6 and result["errors"] == record["eval/test_errors"]
  assert result["confusions"] == script.largest_confusions(ema, 3)
  assert result["confusions"][0][0] == max(
    ema[t, p] for t in range(10) for p in range(10) if t != p
  )
  assert out.stat().st_size > 0


def _experiment(name):
  """experiments/<name>.py as a module."""
  spec = importlib.util.spec_from_file_location(
    name, os.path.join(ROOT, "experiments", f"{name}.py")
  )
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  return script


def _errors_script():
  return _experiment("semi_supervised_errors")


def test_largest_confusions_are_off_diagonal_and_ordered():
  script = _errors_script()
  matrix = np.array([[50, 3, 0], [7, 40, 3], [0, 9, 60]])
  assert script.largest_confusions(matrix, 3) == [(9, 2, 1), (7, 1, 0), (3, 0, 1)]


def _record(folder, *, seed, counts, labels=100, unsupervised_weight=1.0, done=False):
  """A run folder of configs/semi_supervised.py's shape: MNIST, 600 iterations per epoch,
  300 epochs; `counts` are (EMA, current) test errors of 10,000 at the ends of epochs 1, 2, ...
  """
  folder.mkdir(parents=True)
  config = {
    "game": "semi_supervised",
    "seed": seed,
    "data": {"name": "mnist", "num_labels": labels},
    "semi": {"unsupervised_weight": unsupervised_weight},
    "train": {"batch_size": 100, "steps": 180_000},
  }
  (folder / "config.json").write_text(json.dumps(config))
  lines = [json.dumps({"step": 600 * e, "d/loss": 0.5, "perf/steps_per_sec": 12.0}) for e in (1, 2)]
  for epoch, (ema, current) in enumerate(counts, 1):
    record = {
      "step": 600 * epoch,
      "eval/test_error_ema": ema / 1e4,
      "eval/test_error_current": current / 1e4,
      "eval/test_examples": 1e4,
    }
    lines.append(json.dumps(record))
  (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  if done:
    (folder / "DONE").touch()


def test_summary_tables_and_copied_records(tmp_path):
  script = _experiment("semi_supervised_summary")
  runs_dir = tmp_path / "runs"
  _record(runs_dir / "a", seed=0, counts=[(900, 300), (120, 110), (90, 95)], done=True)
  _record(runs_dir / "b", seed=1, counts=[(800, 200), (100, 130)])
  _record(runs_dir / "sup", seed=0, counts=[(2500, 2400)], unsupervised_weight=0.0)
  (runs_dir / "not_a_run").mkdir()
  runs = script.read_runs(str(runs_dir))
  assert [r.name for r in runs] == ["a", "b", "sup"]
  assert [r.done for r in runs] == [True, False, False]
  rows = script.run_table(runs).splitlines()
  # 600 iterations per epoch at 12 iterations/s: 50 s per epoch.
  assert rows[2] == ("| a | mnist | 100 | 0 | semi-supervised | 3 / 300 | 90 | 95 | 50.0 | done |")
  assert rows[3].startswith("| b | mnist | 100 | 1 | semi-supervised | 2 / 300 | 100 | 130 |")
  # A run that has just started (nothing logged yet): dashes, no NaN.
  started = runs_dir / "c"
  started.mkdir()
  (started / "config.json").write_text((runs_dir / "b" / "config.json").read_text())
  (started / "metrics.jsonl").write_text("")
  row = script.run_table(script.read_runs(str(runs_dir))).splitlines()[4]
  assert row == "| c | mnist | 100 | 1 | semi-supervised | 0 / 300 | – | – | – | unfinished |"
  shutil.rmtree(started)
  paper = script.paper_table(runs).splitlines()
  # Only the finished run a counts (EMA 90, current 95); b, unfinished, is named.
  row = next(r for r in paper if r.startswith("| mnist | 100 | semi-supervised"))
  assert "| 93 ± 6.5 | 90 (n = 1) | 95 (n = 1) | 0; not counted, unfinished: 1 | 3, 2 |" in row
  assert any(r.startswith("| mnist | 20 | semi-supervised | 1677 ± 452 | – |") for r in paper)
  # A setting with no finished run yet shows its unfinished ones, marked.
  sup = "| mnist | 100 | supervised only | – | 2500 (n = 1, unfinished) | 2400 (n = 1, unfinished) "
  assert sup + "| 0 | 1 |" in paper
  # With b finished too: EMA 90 and 100 (mean 95, sample std 7.07), current 95 and 130.
  (runs_dir / "b" / "DONE").touch()
  paper = script.paper_table(script.read_runs(str(runs_dir))).splitlines()
  row = next(r for r in paper if r.startswith("| mnist | 100 | semi-supervised"))
  assert "| 93 ± 6.5 | 95.0 ± 7.1 (n = 2) | 112.5 ± 24.7 (n = 2) | 0, 1 | 3, 2 |" in row
  (runs_dir / "b" / "DONE").unlink()
  table = script.epoch_table(runs, script.parse_epochs("1,3,last")).splitlines()
  assert table[0] == "| run, parameters | 1 | 3 | last |"
  assert table[2:6] == [
    "| a, EMA | 900 | 90 | 90 (epoch 3) |",
    "| a, current | 300 | 95 | 95 (epoch 3) |",
    "| b, EMA | 800 |  | 100 (epoch 2) |",
    "| b, current | 200 |  | 130 (epoch 2) |",
  ]
  for bad in ("0", "x", "1.5"):
    with pytest.raises(ValueError, match="--at_epochs"):
      script.parse_epochs(bad)
  # The copied records give the same tables; a DONE marker follows its run folder's.
  out = tmp_path / "docs"
  script.main([str(runs_dir), f"--out={out}", "--copy_runs", "--at_epochs=1,last"])
  assert sorted(p.name for p in (out / "runs").iterdir()) == ["a", "b", "sup"]
  assert (out / "runs" / "a" / "DONE").exists() and not (out / "runs" / "b" / "DONE").exists()
  assert not (out / "runs" / "not_a_run").exists()
  copied = script.read_runs(str(out / "runs"))
  assert script.run_table(copied) == script.run_table(runs)
  assert script.epoch_table(runs, [1, "last"]) in (out / "table.md").read_text()
  assert (out / "test_errors.png").stat().st_size > 0
  (runs_dir / "a" / "DONE").unlink()
  script.main([str(runs_dir), f"--out={out}", "--copy_runs"])
  assert not (out / "runs" / "a" / "DONE").exists()
  # Copying the records onto themselves changes nothing.
  before = (out / "runs" / "b" / "metrics.jsonl").read_bytes()
  script.main([str(out / "runs"), f"--out={out}", "--copy_runs"])
  assert (out / "runs" / "b" / "metrics.jsonl").read_bytes() == before


def _compile_fast(jitted, *args):
  """Compiles without XLA:CPU's backend optimisations: the same numbers for these checks, in
  a third of the compile time of a training step."""
  return jitted.lower(*args).compile(compiler_options={"xla_backend_optimization_level": 0})


def _batch(spec, seed=0):
  rng = np.random.default_rng(seed)
  shape = (1, spec.batch_size) + spec.image_shape
  image = lambda: rng.integers(0, 256, shape, dtype=np.uint8)
  return {
    "image": image(),
    "image_g": image(),
    "labelled_image": image(),
    "labelled_label": rng.integers(0, 10, (1, spec.batch_size)).astype(np.int32),
  }


def _init_batch(spec, n=32):
  images = np.random.default_rng(9).uniform(-1, 1, (n,) + spec.image_shape).astype(np.float32)
  return {"image": images}


def test_four_devices_equal_one_device():
  config = configs.get("semi_supervised", "smoke")
  states, metrics = {}, {}
  for devices in (1, 4):
    spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(devices))
    state = train.init_state(spec, 0, _init_batch(spec))
    step = _compile_fast(train.compile_train_iteration(spec), state, _batch(spec))
    states[devices], metrics[devices] = step(state, _batch(spec))
  chex.assert_trees_all_close(states[4], states[1], rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(metrics[4], metrics[1], rtol=1e-5, atol=1e-6)


def _conv_spec(dataset):
  config = configs.get("semi_supervised", f"{dataset},smoke")
  assert config.model.name == "semi_conv" and config.data.channels == 3
  spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
  state = train.init_state(spec, 0, _init_batch(spec))
  # The generator's weight-normalised output layer is initialised on its pre-activations.
  assert not np.allclose(state.params["generator"]["to_image"]["g"], 1.0)
  return spec, state


def test_cifar10_nets_build_and_train_a_step():
  spec, state = _conv_spec("cifar10")
  step = _compile_fast(jax.jit(lambda s, b: train_iteration(s, b, spec=spec)), state, _batch(spec))
  new, metrics = step(state, _batch(spec))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert int(new.step) == 1
  fns = sampling.make_predict_fns(spec, new, batch_size=8)
  assert set(fns) == {"current", "ema"}
  assert fns["ema"](_batch(spec)["image"][0][:5]).shape == (5, 10)


def test_svhn_nets_build_and_run():
  """The SVHN nets are CIFAR-10's with narrower D blocks: built and run forward only."""
  spec, state = _conv_spec("svhn")
  assert state.params["discriminator"]["block0_conv0"]["v"].shape[-1] == 8
  z = spec.game.sample_inputs(jax.random.PRNGKey(0), 4)
  images = spec.game.sample(state.params, state.model_state, z)["generated"]
  assert images.shape == (4,) + spec.image_shape
  assert spec.game.predict(state.params, state.model_state, images).shape == (4, 10)


def test_classification_evaluator_counts_errors():
  images = np.zeros((5, 2, 2, 1), np.uint8)
  evaluator = ClassificationEvaluator(images, np.array([0, 1, 2, 1, 0]), params="current")
  logits = np.eye(3)[[0, 1, 1, 1, 2]]
  results = evaluator({"current": lambda x: logits}, step=1)
  assert results["eval/test_errors"] == 2 and results["eval/test_error"] == 0.4
  assert results["eval/uses_ema"] == 0.0
  with pytest.raises(ConfigError, match="ema_decay"):
    ClassificationEvaluator(images, np.zeros(5), params="ema")({"current": lambda x: logits}, 1)
  # By true class (rows) and predicted class (columns): predictions 0, 1, 1, 1, 2.
  confusion = evaluator.confusion(
    {"current": lambda x: logits, "other": lambda x: np.eye(3)[[0, 1, 2, 1, 0]]}
  )
  np.testing.assert_array_equal(confusion["current"], [[1, 0, 1], [0, 2, 0], [0, 1, 0]])
  np.testing.assert_array_equal(confusion["other"], np.diag([2, 2, 1]))
  with pytest.raises(ValueError, match="outside the classifier's 2 classes"):
    evaluator.confusion({"current": lambda x: np.zeros((5, 2))})
