"""The Evaluator (config, reference statistics, metrics), the evaluate CLI and the plots."""

from __future__ import annotations

import json
import logging
import os

import jax
import numpy as np
import pytest

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import evaluation, train
from gan_jax.cli import evaluate
from gan_jax.configs import presets
from gan_jax.core.registry import ConfigError
from gan_jax.evaluation import plots
from gan_jax.metrics import classifiers, inception
from gan_jax.metrics import features as features_lib
from gan_jax.metrics import kid as kid_lib
from tests.utils import smoke_config

_RANDOM_CLASSIFIER = []


def _random_classifier_params():
  if not _RANDOM_CLASSIFIER:
    init = jax.jit(classifiers.ConvNet().init)
    params = init(jax.random.PRNGKey(0), np.zeros((1, 16, 16, 1), np.float32))["params"]
    _RANDOM_CLASSIFIER.append(jax.device_get(params))
  return _RANDOM_CLASSIFIER[0]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
  """A private cache with a randomly initialised digits classifier (the code paths do not
  depend on how well it classifies)."""
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  classifiers.save("digits", _random_classifier_params(), {"image_size": 16, "test_accuracy": None})
  return tmp_path / "cache"


def _digits_config(**eval_fields):
  config = smoke_config("dcgan")
  config.eval.update(
    dict(
      every=2,
      metrics="classifier_fid,classifier_is,modes",
      num_samples=200,
      reference_samples=300,
      batch_size=64,
    )
  )
  config.eval.update(eval_fields)
  return config


def _real_as_float(split: str, n: int, size: int = 16):
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  cfg = dict(presets.data_config("digits"), split=split, image_size=size)
  src = data_lib.load_source(cfg, 0)
  return src[np.arange(n)]["image"].astype(np.float32) / 127.5 - 1


# ----------------------------------------------------------------------------- config


def test_eval_config_defaults_match_evaluation_defaults():
  assert presets.eval_config().to_dict() == evaluation.DEFAULTS


def test_no_evaluator_when_every_is_zero():
  config = smoke_config("dcgan")
  assert config.eval.every == 0
  assert evaluation.build_evaluator(config, None) is None


def test_auto_metrics_follow_the_data():
  fmnist = presets.data_config("fashion_mnist").to_dict()
  stacked = presets.data_config("stacked_fashion_mnist").to_dict()
  cifar = presets.data_config("cifar10").to_dict()
  assert evaluation.resolve_metrics("auto", fmnist) == ["classifier_fid", "classifier_is"]
  assert evaluation.resolve_metrics("auto", stacked) == ["classifier_fid", "classifier_is", "modes"]
  assert evaluation.resolve_metrics("auto", cifar) == ["fid"]
  assert evaluation.resolve_metrics("fid, kid,fid", cifar) == ["fid", "kid"]
  with pytest.raises(ConfigError, match="unknown metric 'fdi'.*valid names: classifier_fid"):
    evaluation.resolve_metrics("fdi", cifar)


def test_best_metric_resolution():
  assert evaluation.resolve_best("auto", ["fid", "kid"]) == ("eval/fid", "min")
  assert evaluation.resolve_best("modes", ["classifier_fid", "modes"]) == ("eval/modes", "max")
  assert evaluation.resolve_best("eval/mode_kl", ["modes"]) == ("eval/mode_kl", "min")
  assert evaluation.resolve_best("is", ["inception_score"]) == ("eval/is", "max")
  assert evaluation.resolve_best("", ["fid"])[0] is None
  with pytest.raises(ConfigError, match="not computed by eval.metrics"):
    evaluation.resolve_best("eval/kid", ["fid"])
  assert evaluation.is_better(1.0, 2.0, "min") and not evaluation.is_better(1.0, 2.0, "max")
  assert evaluation.is_better(3.0, None, "max")
  assert not evaluation.is_better(float("nan"), None, "min")


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("every", -1, "eval.every"),
    ("batch_size", 0, "eval.batch_size"),
    ("reference_split", "val", "eval.reference_split"),
    ("kid_subset_size", 1, "kid_subset"),
  ],
)
def test_bad_eval_fields_fail_at_build(field, value, match):
  config = _digits_config()
  config.eval[field] = value
  with pytest.raises(ConfigError, match=match):
    evaluation.build_evaluator(config, None)


def test_unknown_eval_field_is_named():
  config = _digits_config()
  config.eval.frequency = 3
  with pytest.raises(ConfigError, match="frequency"):
    evaluation.eval_options(config)


def test_classifier_metrics_need_a_classifier_for_the_data(cache):
  del cache
  config = _digits_config()
  config.data.update(presets.DATASETS["cifar10"])
  with pytest.raises(ConfigError, match="need a dataset classifier.*cifar10"):
    evaluation.build_evaluator(config, None)


def test_inception_score_without_logits_is_refused(cache, monkeypatch):
  del cache
  # A stand-in Inception without a logits layer, so the check runs without the weights.
  fake = features_lib.FeatureExtractor(
    "inception",
    "fake",
    lambda p, x: {"pool3": x.reshape(x.shape[0], -1).astype(np.float32)},
    {},
    {"pool3": "features"},
  )
  monkeypatch.setitem(
    features_lib.EXTRACTORS._entries,
    "inception",  # pylint: disable=protected-access
    lambda options, mesh=None: fake,
  )
  config = _digits_config(metrics="fid,inception_score")
  with pytest.raises(ConfigError, match="convert_pytorch_fid"):
    evaluation.build_evaluator(config, None)


# ----------------------------------------------------------------------------- evaluator


def test_classifier_metrics_end_to_end(cache):
  config = _digits_config()
  evaluator = evaluation.build_evaluator(config, None)
  assert evaluator.best_metric == "eval/classifier_fid" and evaluator.best_mode == "min"
  assert evaluator.num_samples == 200
  refs = list((cache / "reference_stats").iterdir())
  assert len(refs) == 1

  real = _real_as_float("test", 200)  # the test split vs train statistics
  rng = np.random.default_rng(0)
  noise = rng.uniform(-1, 1, real.shape).astype(np.float32)
  calls = []

  def sample_real(n):
    calls.append(n)
    return real[:n]

  good = evaluator(sample_real, step=2)
  bad = evaluator(lambda n: noise[:n], step=4)
  assert calls == [200]
  expected = {
    "eval/classifier_fid",
    "eval/classifier_is",
    "eval/classifier_is_std",
    "eval/modes",
    "eval/mode_kl",
    "eval/num_samples",
    "perf/eval_seconds",
  }
  assert set(good) == expected and all(isinstance(v, float) for v in good.values())
  assert good["eval/classifier_fid"] * 5 < bad["eval/classifier_fid"]
  assert 1 <= good["eval/modes"] <= 10 and good["eval/mode_kl"] >= 0
  assert 1 <= good["eval/classifier_is"] <= 10

  # Built again: the reference statistics come from the cache (same file, nothing new).
  again = evaluation.build_evaluator(config, None)
  assert sorted((cache / "reference_stats").iterdir()) == sorted(refs)
  np.testing.assert_array_equal(
    again.reference["classifier"]["mu"], evaluator.reference["classifier"]["mu"]
  )


def test_reference_cache_key_changes_with_data_and_split(cache):
  _ = evaluation.build_evaluator(_digits_config(), None)
  _ = evaluation.build_evaluator(
    _digits_config(reference_split="test", reference_samples=100), None
  )
  config = _digits_config(reference_samples=100)
  config.data.num_examples = 200
  _ = evaluation.build_evaluator(config, None)
  config = _digits_config(reference_samples=100)
  config.data.update(presets.DATASETS["digits"])
  config.data.stacked, config.data.channels = True, 3
  _ = evaluation.build_evaluator(config, None)
  names = sorted(p.name for p in (cache / "reference_stats").iterdir())
  assert len(names) == 4, names


def test_evaluator_checks_sample_fn_output(cache):
  del cache
  evaluator = evaluation.build_evaluator(_digits_config(), None)
  with pytest.raises(ValueError, match="returned shape"):
    evaluator(lambda n: np.zeros((n - 1, 16, 16, 1), np.float32), step=0)
  with pytest.raises(ValueError, match="NaN"):
    evaluator(lambda n: np.full((n, 16, 16, 1), np.nan, np.float32), step=0)


def test_inception_metrics_fashion_mnist_train_vs_test_vs_noise(tmp_path, monkeypatch):
  """Inception FID/KID/precision-recall through the Evaluator on a few Fashion-MNIST images:
  test vs train statistics is far below noise vs train."""
  try:
    inception.load_params()
  except FileNotFoundError as e:
    pytest.skip(f"Inception weights not converted ({e})")
  if not os.path.isdir("/usr/share/datasets/fashion-mnist") and not os.environ.get(
    "GAN_JAX_DATA_DIR"
  ):
    pytest.skip("Fashion-MNIST IDX files not installed (apt-get install dataset-fashion-mnist)")
  weights = inception.weights_path()
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  os.makedirs(tmp_path / "weights")
  os.symlink(weights, tmp_path / "weights" / os.path.basename(weights))
  config = smoke_config("dcgan", "fashion_mnist,smoke")
  config.data.image_size = 32
  config.eval.update(
    dict(
      every=1,
      metrics="fid,kid,precision_recall",
      num_samples=12,
      reference_samples=12,
      batch_size=12,
      kid_subsets=10,
      kid_subset_size=6,
    )
  )
  evaluator = evaluation.build_evaluator(config, None)
  assert evaluator.best_metric == "eval/fid"
  from gan_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  test_cfg = dict(config.data.to_dict(), split="test")
  test_images = data_lib.load_source(test_cfg, 0)[np.arange(12)]["image"]
  real = evaluator.evaluate_images(test_images)
  noise = evaluator.evaluate_images(
    np.random.default_rng(0).integers(0, 256, test_images.shape, dtype=np.uint8)
  )
  # 12 samples in 2048 dimensions make FID mostly estimation bias; the gap is still clear,
  # and KID (unbiased) separates them by orders of magnitude.
  assert real["eval/fid"] * 2 < noise["eval/fid"], (real, noise)
  assert real["eval/kid"] * 10 < noise["eval/kid"], (real, noise)
  assert real["eval/precision"] > noise["eval/precision"]


# ----------------------------------------------------------------------------- CLI


def test_evaluate_cli_on_a_run_latest_best_and_step(cache, tmp_path, capsys):
  del cache
  config = _digits_config(every=0)
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(config, workdir)
  # A best checkpoint as the training loop keeps it: same Checkpointer, checkpoints_best/.
  best = checkpoint_lib.Checkpointer(
    os.path.join(workdir, "checkpoints_best"), keep=1, config=checkpoint_lib.config_to_dict(config)
  )
  best.save(3, state)
  best.wait()
  best.close()
  records = []
  for which in ("latest", "best"):
    evaluate.cli(["evaluate", f"--workdir={workdir}", f"--checkpoint={which}", "--num_samples=100"])
    records.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
  assert [r["step"] for r in records] == [6, 3]
  assert all(r["eval/num_samples"] == 100 for r in records)
  # The best checkpoint holds the final state, and make_sample_fn's noise is fixed: the same
  # weights give the same numbers.
  assert records[0]["eval/classifier_fid"] == records[1]["eval/classifier_fid"]
  assert {"eval/classifier_fid", "eval/modes", "eval/classifier_is"} <= set(records[0])
  with pytest.raises(SystemExit):
    evaluate.cli(["evaluate", f"--workdir={workdir}", "--checkpoint=first"])
  assert "expected latest, best or a step" in capsys.readouterr().err
  # A confusion matrix needs a classifier: one line, before any checkpoint is read.
  with pytest.raises(SystemExit):
    evaluate.cli(["evaluate", f"--workdir={workdir}", "--confusion"])
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "needs a run that trains a classifier" in err[0], err
  assert "'unconditional'" in err[0]


def test_evaluate_cli_on_images_npz(cache, tmp_path, capsys):
  del cache
  images = ((_real_as_float("test", 120) + 1) * 127.5).round().astype(np.uint8)
  path = str(tmp_path / "samples.npz")
  np.savez(path, images=images)
  evaluate.cli(
    [
      "evaluate",
      f"--images={path}",
      "--reference=digits",
      "--metrics=classifier_fid,modes",
      "--reference_samples=300",
    ]
  )
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record["eval/num_samples"] == 120
  assert record["eval/classifier_fid"] >= 0 and record["eval/modes"] >= 1


def test_evaluate_cli_errors_are_clear(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    evaluate.cli(["evaluate", f"--workdir={tmp_path}"])
  assert e.value.code == 2
  assert "config.json" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    evaluate.cli(["evaluate", "--images=x.npz"])
  assert "--reference" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    evaluate.cli(["evaluate", "--images=x.npz", "--reference=digits", "--confusion"])
  assert "--confusion needs --workdir" in capsys.readouterr().err


def test_evaluate_images_reference_count_defaults_to_the_images_scored(cache, tmp_path, capsys):
  images = ((_real_as_float("test", 60) + 1) * 127.5).round().astype(np.uint8)
  path = str(tmp_path / "samples.npz")
  np.savez(path, images=images)
  for extra, n in (([], 60), (["--num_samples=40"], 40), (["--reference_samples=90"], 90)):
    evaluate.cli(["evaluate", f"--images={path}", "--reference=digits", "--metrics=modes", *extra])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["eval/num_samples"] == (40 if extra == ["--num_samples=40"] else 60)
    # The reference statistics' file names carry their image count.
    names = os.listdir(cache / "reference_stats")
    assert any(name.startswith(f"digits-train-{n}-") for name in names), (n, names)


@pytest.mark.parametrize(
  "arrays,fragment",
  [
    ({}, "holds no arrays"),
    ({"images": np.zeros((5, 16), np.uint8)}, "expected images (N, H, W)"),
    ({"images": np.zeros((2, 16, 16, 5), np.uint8)}, "C = 1 or 3"),
    ({"images": np.zeros((0, 16, 16, 1), np.uint8)}, "holds no images"),
  ],
)
def test_evaluate_cli_bad_npz_is_a_one_line_error(arrays, fragment, tmp_path, capsys):
  path = str(tmp_path / "bad.npz")
  np.savez(path, **arrays)
  with pytest.raises(SystemExit) as e:
    evaluate.cli(["evaluate", f"--images={path}", "--reference=digits"])
  assert e.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_kid_std_is_left_out_when_every_subset_is_the_same():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(2, 30, 8)).astype(np.float32)
  options = {"kid_subsets": 10, "kid_subset_size": 1000, "mesh": None}
  kid = evaluation.METRICS["kid"]
  # Subsets of min(1000, 30, 30) = 30 rows: every subset is all of both sets.
  assert kid_lib.kid(x, y, 10, 1000)[1] != kid_lib.kid(x, y, 10, 1000)[1]  # NaN
  assert set(kid.compute({"features": x}, {"features": y}, options)) == {"eval/kid"}
  assert kid_lib.kid(x, y, 1, 10)[1] != kid_lib.kid(x, y, 1, 10)[1]  # one subset: NaN too
  options["kid_subset_size"] = 10
  results = kid.compute({"features": x}, {"features": y}, options)
  assert set(results) == {"eval/kid", "eval/kid_std"} and results["eval/kid_std"] > 0


_TRACES = []


def _flat_features(p, x):
  del p
  _TRACES.append(x.shape)  # runs once per trace
  return {"out": x.reshape(x.shape[0], -1).astype(np.float32)}


def test_extractors_built_alike_compile_once():
  """An evaluator builds its extractors anew each time: they share the jitted network."""
  _TRACES.clear()
  images = np.zeros((8, 4, 4, 1), np.uint8)
  outs = []
  for params in ({"w": np.zeros(2)}, {"w": np.ones(2)}):  # new weights, same shapes
    extractor = features_lib.FeatureExtractor(
      "flat", "flat", _flat_features, params, {"out": "f"}, 8
    )
    outs.append(extractor(images)["f"])
  assert len(_TRACES) == 1, _TRACES
  np.testing.assert_array_equal(outs[0], outs[1])
  # Another output selection is another program.
  features_lib.FeatureExtractor("flat", "flat", _flat_features, {}, {"out": "g"}, 8)(images)
  assert len(_TRACES) == 2


def test_feature_extraction_logs_progress_and_warns_with_an_eta(caplog):
  extractor = features_lib.FeatureExtractor(
    "flat",
    "flat",
    lambda p, x: {"out": x.reshape(x.shape[0], -1).astype(np.float32)},
    {},
    {"out": "features"},
    batch_size=4,
  )
  images = np.zeros((40, 4, 4, 1), np.uint8)
  with caplog.at_level(logging.INFO):
    out = extractor(images, log_every=3, warn_seconds=0.0)
  assert out["features"].shape == (40, 16)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "flat features of 40 images will take about" in warnings[0]
  progress = [r.getMessage() for r in caplog.records if "images/s, ETA" in r.getMessage()]
  assert [p.split(":")[1].split(",")[0].strip() for p in progress] == [
    "12/40 images",
    "24/40 images",
    "36/40 images",
  ]
  caplog.clear()
  with caplog.at_level(logging.INFO):
    extractor(images, log_every=3)  # fast: no warning
  assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ----------------------------------------------------------------------------- plots


def _write_run(folder, values, steps=(100, 200, 300)):
  os.makedirs(folder)
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    for s, v in zip(steps, values):
      f.write(json.dumps({"step": s, "eval/fid": v, "d/loss": 1.0}) + "\n")
    f.write('{"step": 4')  # a line cut off by a killed run is ignored


def test_plots_group_seeds_and_draw_bands(tmp_path):
  _write_run(tmp_path / "dcgan_s0", [30.0, 20.0, 10.0])
  _write_run(tmp_path / "dcgan_s1", [50.0, 40.0, 30.0])
  _write_run(tmp_path / "wgan_seed0", [60.0, 50.0, 40.0])
  groups = plots.parse_runs([str(tmp_path / "dcgan_s*"), str(tmp_path / "wgan_seed0")])
  assert list(groups) == ["dcgan", "wgan"] and len(groups["dcgan"]) == 2
  runs = [plots.read_metrics(p) for p in groups["dcgan"]]
  steps, mean, low, high, count = plots.aggregate(runs, "eval/fid")
  np.testing.assert_array_equal(steps, [100, 200, 300])
  np.testing.assert_allclose(mean, [40, 30, 20])
  np.testing.assert_allclose(low, [30, 20, 10])
  np.testing.assert_allclose(high, [50, 40, 30])
  np.testing.assert_array_equal(count, [2, 2, 2])
  _, _, lo_std, hi_std, _ = plots.aggregate(runs, "eval/fid", band="std")
  np.testing.assert_allclose(hi_std - lo_std, [20, 20, 20])
  out = tmp_path / "plots"
  plots.cli(
    [
      "plots",
      f"mine={tmp_path / 'dcgan_s0'},{tmp_path / 'dcgan_s1'}",
      str(tmp_path / "wgan_seed0"),
      f"--out={out}",
    ]
  )
  png = out / "eval_fid.png"
  assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
  assert not (out / "d_loss.png").exists()  # eval/* metrics only, by default


def test_plots_errors(tmp_path):
  _write_run(tmp_path / "a", [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="available: d/loss, eval/fid"):
    plots.plot({"a": [str(tmp_path / "a")]}, ["eval/kid"], str(tmp_path / "out"))
  series = plots.read_metrics(str(tmp_path / "a"))  # series a caller has read pass through
  with pytest.raises(ValueError, match="available: d/loss, eval/fid"):
    plots.plot({"a": [series]}, ["eval/kid"], str(tmp_path / "out"))
  assert plots.plot({"a": [series]}, ["eval/fid"], str(tmp_path / "fid.png")) == [
    str(tmp_path / "fid.png")
  ]
  with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
    plots.read_metrics(str(tmp_path / "missing"))


def test_plot_panels_put_metrics_side_by_side(tmp_path):
  _write_run(tmp_path / "a", [1.0, 2.0, 3.0])
  out = tmp_path / "panels.png"
  plots.cli(["plots", str(tmp_path / "a"), "--metrics=eval/fid,d/loss", "--panels", f"--out={out}"])
  from PIL import Image  # pylint: disable=g-import-not-at-top

  width, height = Image.open(out).size
  assert width > 1.8 * height  # two panels in one row
  with pytest.raises(SystemExit):  # --panels needs one .png
    plots.cli(["plots", str(tmp_path / "a"), "--metrics=eval/fid", "--panels", f"--out={tmp_path}"])
