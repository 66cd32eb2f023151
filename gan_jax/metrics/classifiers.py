r"""Dataset classifiers for MNIST-like data: a small convnet per dataset, trained on the train
split, cached, and used as a feature extractor for GAN evaluation.

  python -m gan_jax.metrics.classifiers --dataset=fashion_mnist   # ~10 min on 2 CPU cores
  python -m gan_jax.metrics.classifiers --dataset=mnist           # needs MNIST IDX files or TFDS

From the classifier the evaluation derives (gan_jax.evaluation):
  * a Fréchet classifier distance: the FID formula on the penultimate activations;
  * a classifier Inception score: the Inception score with the classifier's predictions;
  * on stacked colour data (Colour/Stacked MNIST; Srivastava et al. 2017, VEEGAN; Tempered GAN
    Sec. 3), each channel is classified separately, the mode is 100 l_r + 10 l_g + l_b, and
    the number of modes covered (of 1000) and KL(mode histogram || uniform) are reported.

The cached file ($GAN_JAX_CACHE/classifiers/<dataset>.npz, see gan_jax.metrics.cache) holds
the weights and a JSON record with the test accuracy; `load` checks that it matches the
architecture.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags, logging

from gan_jax import cli as cli_lib
from gan_jax import data as data_lib
from gan_jax.core import xla_cpu
from gan_jax.core.registry import ConfigError, Registry
from gan_jax.images import images_to_float
from gan_jax.metrics import cache
from gan_jax.metrics import features as features_lib

ARCH = "convnet-v1"
NUM_CLASSES = 10

# Datasets with a classifier: name -> (data sections tried in order, horizontal flips as
# augmentation, epochs). The data sections are gan_jax.data configs (see configs/presets.py).
_BASE = dict(path="", num_examples=0, channels=1, resize="pad", stacked=False, image_size=32)
DATASETS: Registry[dict[str, Any]] = Registry("classifier dataset")
DATASETS.register("fashion_mnist")(
  dict(
    sources=[
      dict(_BASE, source="idx", name="fashion_mnist"),
      dict(_BASE, source="tfds", name="fashion_mnist"),
    ],
    flip=True,
    epochs=8,
  )
)
DATASETS.register("mnist")(
  dict(
    sources=[dict(_BASE, source="idx", name="mnist"), dict(_BASE, source="tfds", name="mnist")],
    flip=False,
    epochs=6,
  )
)
# scikit-learn's 8x8 digits padded to 16x16: tiny and offline, for smoke runs and tests.
DATASETS.register("digits")(
  dict(sources=[dict(_BASE, source="digits", name="digits", image_size=16)], flip=False, epochs=60)
)
# The same digits stretched to 32x32: CycleGAN's digits <-> MNIST domain X (configs/cyclegan.py),
# whose translations F(y) it judges.
DATASETS.register("digits32")(
  dict(
    sources=[dict(_BASE, source="digits", name="digits", image_size=32, resize="resize")],
    flip=False,
    epochs=60,
  )
)


class ConvNet(nn.Module):
  """Two 3x3 conv layers (32 and 64 channels, ReLU, each followed by a 2x2 max pool) and two
  dense layers (128, 10): a LeNet-style classifier that trains on a CPU in minutes.

  Input (B, S, S, 1) float in [-1, 1]; returns {"features": (B, 128) penultimate activations,
  "logits": (B, 10)}.
  """

  dropout: float = 0.3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    h = nn.relu(nn.Dense(128)(x))
    logits = nn.Dense(NUM_CLASSES)(nn.Dropout(self.dropout, deterministic=not train)(h))
    return {"features": h, "logits": logits}


def _load_split(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, S, S, 1) and int labels (N,) of a split, trying each known source."""
  entry = DATASETS.get(dataset, "--dataset")
  errors = []
  for cfg in entry["sources"]:
    try:
      source = data_lib.load_source(dict(cfg, split=split), seed=0)
    except (FileNotFoundError, ImportError) as e:
      errors.append(f"{cfg['source']}: {str(e).splitlines()[0]}")
      continue
    batch = source[np.arange(len(source))]
    if "label" not in batch:
      raise ValueError(f"{dataset} ({cfg['source']}) has no labels; a classifier needs them")
    return batch["image"], batch["label"].astype(np.int32)
  raise FileNotFoundError(f"no {split} split of {dataset} found; tried: " + " | ".join(errors))


def train_classifier(
  train: tuple[np.ndarray, np.ndarray],
  test: tuple[np.ndarray, np.ndarray],
  epochs: int,
  batch_size: int = 128,
  learning_rate: float = 1e-3,
  flip: bool = False,
  seed: int = 0,
  cpu_convolutions: str = xla_cpu.DEFAULT_CONVOLUTION_KERNELS,
) -> tuple[dict, float]:
  """Trains ConvNet with Adam (cosine-decayed learning rate) and cross-entropy.

  Args:
    train, test: (uint8 images (N, S, S, 1), int labels (N,)).
    epochs: passes over the train split.
    flip: augment with random horizontal flips (for clothes, not digits).
    seed: initialisation, batch order, flips and dropout.
    cpu_convolutions: the kernels of the convolutions on CPU, "eigen" or "ynnpack"
      (`gan_jax.core.xla_cpu`).

  Returns:
    (params, test accuracy).
  """
  images, labels = train
  model = ConvNet()
  key = jax.random.PRNGKey(seed)
  params = model.init(key, images_to_float(images[:1]))["params"]
  steps_per_epoch = max(1, len(images) // batch_size)
  schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
  tx = optax.adam(schedule)
  opt_state = tx.init(params)

  options = xla_cpu.compiler_options(
    jax.default_backend(), cpu_convolutions, "train_classifier(cpu_convolutions=...)"
  )

  @functools.partial(jax.jit, compiler_options=options)
  def step(params, opt_state, x, y, key):
    k_flip, k_drop = jax.random.split(key)
    x = images_to_float(x)
    if flip:
      mirror = jax.random.bernoulli(k_flip, 0.5, (x.shape[0], 1, 1, 1))
      x = jnp.where(mirror, x[:, :, ::-1], x)

    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True, rngs={"dropout": k_drop})["logits"]
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  start = time.time()
  for epoch in range(epochs):
    perm = rng.permutation(len(images))
    losses = []
    for i in range(steps_per_epoch):
      idx = perm[i * batch_size : (i + 1) * batch_size]
      key, sub = jax.random.split(key)
      params, opt_state, loss = step(params, opt_state, images[idx], labels[idx], sub)
      losses.append(loss)
    logging.info(
      "epoch %d/%d: loss %.4f (%.0f s)",
      epoch + 1,
      epochs,
      float(np.mean(jax.device_get(losses))),
      time.time() - start,
    )
  return params, accuracy(params, *test)


@jax.jit
def _logits(params: Mapping, images: jax.Array) -> jax.Array:
  return ConvNet().apply({"params": params}, images_to_float(images))["logits"]


def predict_logits(params: Mapping, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  """Logits (N, 10) of uint8 images (N, S, S, 1)."""
  return np.concatenate(
    [
      np.asarray(_logits(params, images[i : i + batch_size]))
      for i in range(0, len(images), batch_size)
    ]
  )


def accuracy(params: Mapping, images: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy on uint8 images (N, S, S, 1) and int labels (N,)."""
  return float(np.mean(predict_logits(params, images).argmax(-1) == labels))


# ----------------------------------------------------------------------------- cache


def classifier_path(dataset: str) -> str:
  return cache.cache_dir("classifiers", f"{dataset}.npz")


def save(dataset: str, params: Mapping, record: Mapping[str, Any], path: str | None = None) -> str:
  """Writes weights and the JSON record (arch, image size, test accuracy, ...)."""
  path = path or classifier_path(dataset)
  flat = {
    jax.tree_util.keystr(p, simple=True, separator="/"): np.asarray(v)
    for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }
  cache.save_npz_atomic(path, __record__=np.asarray(json.dumps(dict(record, arch=ARCH))), **flat)
  return path


def load(dataset: str, path: str | None = None) -> tuple[dict, dict[str, Any]]:
  """(params, record) of the cached classifier of `dataset`.

  Raises:
    FileNotFoundError: not trained yet; the message gives the command that trains it.
  """
  DATASETS.get(dataset, "classifier dataset")
  path = path or classifier_path(dataset)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"no {dataset} classifier at {path}; train it with `python -m gan_jax.metrics.classifiers "
      f"--dataset={dataset}` (or choose metrics that do not need it: eval.metrics)"
    )
  with np.load(path) as f:
    record = json.loads(str(f["__record__"]))
    flat = {k: f[k] for k in f.files if k != "__record__"}
  if record.get("arch") != ARCH:
    raise ValueError(
      f"{path} holds a {record.get('arch')} classifier, this version uses "
      f"{ARCH}; retrain with "
      f"`python -m gan_jax.metrics.classifiers --dataset={dataset}`"
    )
  params: dict = {}
  for key, value in flat.items():
    node = params
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return params, record


def apply_per_channel(params: Mapping, images: jax.Array, image_size: int) -> dict[str, jax.Array]:
  """Classifies each channel of uint8 images (B, H, W, C) as a grayscale image.

  Images of another size are resized bilinearly to the classifier's `image_size`.

  Returns:
    {"features": (B, C * 128) concatenated per-channel activations, "logits": (B, C, 10)}.
  """
  b, h, w, c = images.shape
  x = jnp.moveaxis(images_to_float(images), -1, 1).reshape(b * c, h, w, 1)
  if (h, w) != (image_size, image_size):
    x = jax.image.resize(x, (b * c, image_size, image_size, 1), "bilinear")
  out = ConvNet().apply({"params": params}, x)
  return {
    "features": out["features"].reshape(b, -1),
    "logits": out["logits"].reshape(b, c, NUM_CLASSES),
  }


@functools.cache
def _apply_at(size: int) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
  """`apply_per_channel` at one input size, the same function object on every call (so that
  the extractors of a dataset share one compiled program)."""
  return functools.partial(apply_per_channel, image_size=size)


def classifier_extractor(
  dataset: str, options: Mapping[str, Any], mesh=None
) -> features_lib.FeatureExtractor:
  """The cached classifier of `dataset` as a FeatureExtractor ("features", "logits")."""
  params, record = load(dataset, options.get("classifier_path") or None)
  size = int(record["image_size"])
  key = f"classifier-{dataset}-{ARCH}-{cache.arrays_digest(_flat(params))}"
  return features_lib.FeatureExtractor(
    f"{dataset}_classifier",
    key,
    _apply_at(size),
    params,
    {"features": "features", "logits": "logits"},
    batch_size=options.get("batch_size", 500),
    mesh=mesh,
  )


def _flat(params: Mapping) -> dict[str, np.ndarray]:
  return {
    jax.tree_util.keystr(p): np.asarray(v)
    for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }


# Run as `python -m gan_jax.metrics.classifiers`, this file executes a second time as __main__
# after the package has imported it (and registered the extractors): register once.
if __name__ != "__main__":
  for _name in DATASETS:
    features_lib.EXTRACTORS.register(f"{_name}_classifier")(
      lambda options, mesh=None, _d=_name: classifier_extractor(_d, options, mesh)
    )


def dataset_for(data_name: str) -> str | None:
  """The classifier dataset for a config's data.name, or None if there is none."""
  # Registry lookups raise ConfigError for unknown names, so test membership on the names.
  return data_name if data_name in set(DATASETS) else None


# This tool's own flag set, apart from absl's global one: other tools also define --seed,
# --batch_size and --out.
FLAGS = flags.FlagValues()
flags.DEFINE_string(
  "dataset", None, f"one of {', '.join(DATASETS)}", flag_values=FLAGS, required=True
)
flags.DEFINE_integer("epochs", 0, "0: the dataset's default", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 128, "training batch size", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the initialisation and the data order", flag_values=FLAGS)
flags.DEFINE_string("out", None, "output file (default: the cache)", flag_values=FLAGS)


def main(argv: list[str]) -> None:
  """Trains the parsed FLAGS' classifier, caches it and prints its JSON record."""
  if len(argv) > 1:
    cli_lib.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  try:
    entry = DATASETS.get(FLAGS.dataset, "--dataset")
  except ConfigError as e:
    cli_lib.fail(e)
  train = _load_split(FLAGS.dataset, "train")
  test = _load_split(FLAGS.dataset, "test")
  epochs = FLAGS.epochs or entry["epochs"]
  start = time.time()
  params, acc = train_classifier(
    train, test, epochs, FLAGS.batch_size, flip=entry["flip"], seed=FLAGS.seed
  )
  record = dict(
    dataset=FLAGS.dataset,
    test_accuracy=acc,
    image_size=int(train[0].shape[1]),
    epochs=epochs,
    train_examples=len(train[0]),
    test_examples=len(test[0]),
    seconds=round(time.time() - start, 1),
  )
  path = save(FLAGS.dataset, params, record, FLAGS.out)
  print(json.dumps(dict(record, path=path)))


def cli(argv: list[str]) -> None:
  """Parses a command line (program name first, e.g. sys.argv) and runs `main`."""
  cli_lib.cli(main, FLAGS, argv)


if __name__ == "__main__":
  from gan_jax.metrics import classifiers as _package  # the registered copy of this module

  cli_lib.run_app(_package.main, _package.FLAGS, __doc__)
