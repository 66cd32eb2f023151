"""Dataset classifiers (trained in-test on scikit-learn's digits) and mode counting."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import evaluation
from gan_jax.core.registry import ConfigError
from gan_jax.metrics import classifiers
from gan_jax.metrics import features as features_lib


@pytest.fixture(scope="module")
def digits_model():
  train = classifiers._load_split("digits", "train")  # pylint: disable=protected-access
  test = classifiers._load_split("digits", "test")  # pylint: disable=protected-access
  params, acc = classifiers.train_classifier(train, test, epochs=4, batch_size=64)
  return params, acc, test


def test_classifier_learns_digits(digits_model):
  params, acc, (images, labels) = digits_model
  assert images.shape[1:] == (16, 16, 1)
  assert acc > 0.8, acc  # 10 classes: chance is 0.1
  np.testing.assert_allclose(classifiers.accuracy(params, images, labels), acc)


def test_save_load_roundtrip_and_extractor(digits_model, tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  params, acc, (images, _) = digits_model
  path = classifiers.save("digits", params, {"test_accuracy": acc, "image_size": 16})
  assert path.startswith(str(tmp_path))
  loaded, record = classifiers.load("digits")
  assert record["test_accuracy"] == acc and record["arch"] == classifiers.ARCH
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(params))
  extractor = features_lib.EXTRACTORS.get("digits_classifier")({"batch_size": 8})
  out = extractor(images[:10])
  assert out["features"].shape == (10, 128) and out["logits"].shape == (10, 1, 10)
  np.testing.assert_allclose(
    out["logits"][:, 0], classifiers.predict_logits(params, images[:10]), rtol=1e-4, atol=1e-4
  )


def test_missing_classifier_says_how_to_train(tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  with pytest.raises(
    FileNotFoundError, match="python -m gan_jax.metrics.classifiers --dataset=fashion_mnist"
  ):
    classifiers.load("fashion_mnist")
  with pytest.raises(ConfigError, match="valid names: digits, digits32, fashion_mnist, mnist"):
    classifiers.load("cifar10")


def test_module_command_runs(tmp_path):
  """`python -m gan_jax.metrics.classifiers` (the command the messages give) starts: run as a
  script, the module must not register its extractors a second time."""
  out = subprocess.run(
    [sys.executable, "-m", "gan_jax.metrics.classifiers", "--dataset=cifar10"],
    capture_output=True,
    text=True,
    timeout=120,
    cwd=tmp_path,
    check=False,
  )
  assert out.returncode == 2, out.stderr
  assert "Traceback" not in out.stderr
  assert "error: unknown classifier dataset 'cifar10'" in out.stderr


def test_stale_architecture_is_refused(digits_model, tmp_path):
  params = digits_model[0]
  path = classifiers.save("digits", params, {"image_size": 16}, path=str(tmp_path / "c.npz"))
  with np.load(path) as f:
    arrays = dict(f)
  arrays["__record__"] = np.asarray('{"arch": "old"}')
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match="retrain"):
    classifiers.load("digits", path)


def test_per_channel_classification_of_stacked_images(digits_model):
  params, _, (images, labels) = digits_model
  stacked = np.concatenate([images[:12], images[12:24], images[24:36]], axis=-1)
  out = jax.jit(lambda p, x: classifiers.apply_per_channel(p, x, 16))(params, stacked)
  for c in range(3):
    np.testing.assert_allclose(
      out["logits"][:, c],
      classifiers.predict_logits(params, images[12 * c : 12 * (c + 1)]),
      rtol=1e-4,
      atol=1e-4,
    )
  assert out["features"].shape == (12, 3 * 128)
  # Modes read off the channels: 100 l_r + 10 l_g + l_b.
  modes = evaluation.mode_labels(np.asarray(out["logits"]))
  pred = [
    classifiers.predict_logits(params, images[12 * c : 12 * (c + 1)]).argmax(-1) for c in range(3)
  ]
  np.testing.assert_array_equal(modes, 100 * pred[0] + 10 * pred[1] + pred[2])
  del labels


def test_images_of_another_size_are_resized(digits_model):
  params, _, (images, _) = digits_model
  big = np.repeat(np.repeat(images[:4], 2, 1), 2, 2)  # 32x32 copies
  out = classifiers.apply_per_channel(params, big, 16)
  assert out["logits"].shape == (4, 1, 10)
  agree = np.mean(
    np.asarray(out["logits"][:, 0]).argmax(-1)
    == classifiers.predict_logits(params, images[:4]).argmax(-1)
  )
  assert agree >= 0.75


# ----------------------------------------------------------------------------- modes


def test_mode_labels_and_coverage():
  logits = np.zeros((4, 3, 10), np.float32)
  for i, (r, g, b) in enumerate([(1, 2, 3), (1, 2, 3), (9, 9, 9), (0, 0, 7)]):
    logits[i, 0, r] = logits[i, 1, g] = logits[i, 2, b] = 5.0
  modes = evaluation.mode_labels(logits)
  np.testing.assert_array_equal(modes, [123, 123, 999, 7])
  covered, kl = evaluation.mode_coverage(modes, 1000)
  assert covered == 3
  p = np.array([0.5, 0.25, 0.25])
  np.testing.assert_allclose(kl, np.sum(p * np.log(p * 1000)), rtol=1e-10)


def test_uniform_mode_histogram_has_zero_kl_and_full_coverage():
  covered, kl = evaluation.mode_coverage(np.tile(np.arange(1000), 3), 1000)
  assert covered == 1000 and abs(kl) < 1e-12
  covered, kl = evaluation.mode_coverage(np.zeros(50, int), 1000)
  assert covered == 1 and np.isclose(kl, np.log(1000))


def test_mode_probabilities_are_the_joint_of_the_channels():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 3, 10)).astype(np.float32)
  joint = evaluation.mode_probabilities(logits)
  assert joint.shape == (5, 1000)
  np.testing.assert_allclose(joint.sum(1), 1.0, rtol=1e-5)
  p = np.asarray(jax.nn.softmax(logits, -1))
  np.testing.assert_allclose(joint[:, 123], p[:, 0, 1] * p[:, 1, 2] * p[:, 2, 3], rtol=1e-5)
  np.testing.assert_array_equal(joint.argmax(1), evaluation.mode_labels(logits))


def test_cli_trains_and_saves_a_classifier(tmp_path, capsys):
  out = str(tmp_path / "digits.npz")
  classifiers.cli(
    ["classifiers", "--dataset=digits", "--epochs=1", "--batch_size=64", f"--out={out}"]
  )
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record["path"] == out and record["epochs"] == 1 and record["dataset"] == "digits"
  _, saved = classifiers.load("digits", out)
  assert saved["test_accuracy"] == record["test_accuracy"]


def test_cli_errors_name_the_dataset_flag(capsys):
  with pytest.raises(SystemExit) as e:
    classifiers.cli(["classifiers"])
  assert e.value.code == 2 and "--dataset" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    classifiers.cli(["classifiers", "--dataset=cifar10"])
  assert e.value.code == 2 and "digits" in capsys.readouterr().err
