"""Image sources, found by name through `SOURCES` (config field `data.source`).

A source is random-access: `len(source)` examples and `source[indices]` returning
{"image": uint8 (n, H, W, C), optional "label": int32 (n,)} at the size the model wants. Small
datasets are decoded and preprocessed once into memory; large ones (an image folder, a big TFDS
set) are read and preprocessed per batch.
"""

from __future__ import annotations

import glob
import gzip
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from gan_jax.registry import ConfigError, Registry, check_choice

RESIZE_MODES = ("pad", "resize", "crop_resize")
# Datasets larger than this (bytes, after preprocessing) are preprocessed per batch.
MAX_IN_MEMORY_BYTES = 2 ** 31


class Source(Protocol):

  def __len__(self) -> int:
    ...

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    ...


# ----------------------------------------------------------------------------- preprocessing


def fit_image(image: np.ndarray, size: int, channels: int, mode: str) -> np.ndarray:
  """One uint8 image (H, W[, C]) -> (size, size, channels) uint8.

  Modes: "pad" centres the image on a black canvas (28x28 MNIST -> 32x32, as in Tempered GAN)
  and resizes only if it is larger than `size`; "resize" stretches to size x size;
  "crop_resize" takes the central square crop and resizes it (CelebA, LSUN).
  """
  if image.ndim == 2:
    image = image[:, :, None]
  if image.shape[-1] == 4:
    image = image[:, :, :3]
  if image.shape[-1] != channels:
    pil = Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image)
    image = np.asarray(pil.convert("L" if channels == 1 else "RGB"))
    if image.ndim == 2:
      image = image[:, :, None]
  h, w = image.shape[:2]
  if mode == "crop_resize" and h != w:
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    image = image[top:top + s, left:left + s]
    h, w = s, s
  if mode == "pad" and h <= size and w <= size:
    out = np.zeros((size, size, channels), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = image
    return out
  if (h, w) != (size, size):
    pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    image = np.asarray(pil.resize((size, size), Image.BICUBIC if max(h, w) < size
                                  else Image.LANCZOS))
    if image.ndim == 2:
      image = image[:, :, None]
  return np.ascontiguousarray(image, np.uint8)


def fit_images(images: Sequence[np.ndarray] | np.ndarray, size: int, channels: int,
               mode: str) -> np.ndarray:
  """Batch version of `fit_image`: -> (n, size, size, channels) uint8."""
  return np.stack([fit_image(np.asarray(im), size, channels, mode) for im in images])


class ArraySource:
  """Examples held in memory as arrays."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None = None):
    self.images = images
    self.labels = labels

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    out = {"image": self.images[indices]}
    if self.labels is not None:
      out["label"] = self.labels[indices]
    return out


class LazySource:
  """Examples read and preprocessed per batch by `read(index) -> (image, label or None)`."""

  def __init__(self, length: int, read: Callable[[int], tuple[np.ndarray, int | None]],
               size: int, channels: int, mode: str, has_labels: bool):
    self._length, self._read = length, read
    self._fit = lambda im: fit_image(im, size, channels, mode)
    self.has_labels = has_labels

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    items = [self._read(int(i)) for i in np.asarray(indices)]
    out = {"image": np.stack([self._fit(im) for im, _ in items])}
    if self.has_labels:
      out["label"] = np.asarray([lab for _, lab in items], np.int32)
    return out


class StackedSource:
  """Colour/Stacked MNIST (Tempered GAN Sec. 3; VEEGAN): three random grayscale examples in
  the R, G and B channels. With labels l_r, l_g, l_b the mode is 100 l_r + 10 l_g + l_b (1000
  modes for 10 classes).

  Example i stacks base examples perm_r[i], perm_g[i], perm_b[i] for three fixed random
  permutations drawn from `seed`, so the dataset is the same on every run.
  """

  def __init__(self, base: Source, seed: int):
    self.base = base
    rng = np.random.default_rng([seed, 0x57AC])
    self.perms = [rng.permutation(len(base)) for _ in range(3)]

  def __len__(self) -> int:
    return len(self.base)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    parts = [self.base[perm[indices]] for perm in self.perms]
    if parts[0]["image"].shape[-1] != 1:
      raise ConfigError("data.stacked needs a grayscale base dataset")
    out = {"image": np.concatenate([p["image"] for p in parts], axis=-1)}
    if "label" in parts[0]:
      out["label"] = (100 * parts[0]["label"] + 10 * parts[1]["label"]
                      + parts[2]["label"]).astype(np.int32)
    return out


# ----------------------------------------------------------------------------- loaders

SOURCES = Registry("data source")


def _materialise(images, labels, cfg) -> ArraySource:
  fitted = fit_images(images, cfg["image_size"], _base_channels(cfg), cfg["resize"])
  return ArraySource(fitted, None if labels is None else np.asarray(labels, np.int32))


def _base_channels(cfg: Mapping[str, Any]) -> int:
  """Channels of the source before stacking: stacking makes 3 channels out of 1."""
  return 1 if cfg["stacked"] else cfg["channels"]


def _take(images, labels, cfg):
  n = cfg["num_examples"]
  if n:
    images = images[:n]
    labels = None if labels is None else labels[:n]
  return images, labels


def _idx_search_dirs(name: str) -> list[str]:
  dirs = []
  env = os.environ.get("GAN_JAX_DATA_DIR")
  variants = [name, name.replace("_", "-")]
  if env:
    dirs += [os.path.join(env, v) for v in variants]
  dirs += [os.path.join("/usr/share/datasets", v) for v in variants]
  return dirs


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (optionally gzipped), as used by MNIST and Fashion-MNIST."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code != 0x08:
    raise ValueError(f"{path} is not an unsigned-byte IDX file")
  shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@SOURCES.register("idx")
def idx_source(cfg: Mapping[str, Any]) -> Source:
  """IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (MNIST, Fashion-MNIST).

  Looked up in `data.path`, else in $GAN_JAX_DATA_DIR/<name> and /usr/share/datasets/<name>
  (where Debian's `dataset-fashion-mnist` puts Fashion-MNIST).
  """
  prefix = {"train": "train", "test": "t10k"}[check_choice(cfg["split"], ("train", "test"),
                                                           "data.split")]
  dirs = [cfg["path"]] if cfg["path"] else _idx_search_dirs(cfg["name"])
  for d in dirs:
    found = sorted(glob.glob(os.path.join(d, f"{prefix}-images-idx3-ubyte*")))
    if found:
      images = read_idx(found[0])
      label_files = sorted(glob.glob(os.path.join(d, f"{prefix}-labels-idx1-ubyte*")))
      labels = read_idx(label_files[0]) if label_files else None
      return _materialise(*_take(images, labels, cfg), cfg)
  hint = ("install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or "
          if cfg["name"] == "fashion_mnist" else "")
  raise FileNotFoundError(
      f"IDX files for dataset {cfg['name']!r} ({prefix}-images-idx3-ubyte[.gz]) not found in "
      f"{dirs}. To get them, {hint}download the IDX files into one of these folders, or set "
      f"--config.data.path to the folder that holds them.")


@SOURCES.register("digits")
def digits_source(cfg: Mapping[str, Any]) -> Source:
  """scikit-learn's bundled 8x8 digits (1797 images, no download): the first 80% are the
  train split, the rest the test split. Pixel values 0..16 are scaled to 0..255."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
  cut = int(0.8 * len(images))
  part = slice(0, cut) if check_choice(cfg["split"], ("train", "test"),
                                       "data.split") == "train" else slice(cut, None)
  return _materialise(*_take(images[part], digits.target[part], cfg), cfg)


@SOURCES.register("npz")
def npz_source(cfg: Mapping[str, Any]) -> Source:
  """A `.npz` file (data.path) with uint8 images (N, H, W[, C]) under "images" (or "x", or
  its only array) and optional int labels under "labels" (or "y")."""
  if not cfg["path"] or not os.path.exists(cfg["path"]):
    raise FileNotFoundError(f"data.source='npz' needs --config.data.path=<file.npz>; "
                            f"{cfg['path']!r} does not exist")
  with np.load(cfg["path"]) as f:
    keys = list(f.keys())
    image_key = next((k for k in ("images", "x", "image") if k in keys),
                     keys[0] if len(keys) == 1 else None)
    if image_key is None:
      raise ValueError(f"{cfg['path']} has arrays {keys}; name the images 'images'")
    images = f[image_key]
    label_key = next((k for k in ("labels", "y", "label") if k in keys), None)
    labels = f[label_key] if label_key else None
  if images.dtype != np.uint8:
    raise ValueError(f"{cfg['path']}: images must be uint8 in [0, 255], got {images.dtype}")
  return _materialise(*_take(images, labels, cfg), cfg)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


@SOURCES.register("folder")
def folder_source(cfg: Mapping[str, Any]) -> Source:
  """All images under the folder data.path (recursively, in sorted order), without labels."""
  root = cfg["path"]
  if not root or not os.path.isdir(root):
    raise FileNotFoundError(f"data.source='folder' needs --config.data.path=<folder>; "
                            f"{root!r} is not a folder")
  files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                 if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
  if cfg["num_examples"]:
    files = files[:cfg["num_examples"]]

  def read(i):
    with Image.open(files[i]) as im:
      return np.asarray(im.convert("RGB")), None

  source = LazySource(len(files), read, cfg["image_size"], _base_channels(cfg), cfg["resize"],
                      has_labels=False)
  return _maybe_materialise(source, cfg)


def _maybe_materialise(source: LazySource, cfg) -> Source:
  size = len(source) * cfg["image_size"] ** 2 * _base_channels(cfg)
  if size > MAX_IN_MEMORY_BYTES:
    return source
  data = source[np.arange(len(source))]
  return ArraySource(data["image"], data.get("label"))


# TFDS names of the datasets the configs know, with the feature holding a class label.
TFDS_LABELS = {"mnist": "label", "fashion_mnist": "label", "cifar10": "label",
               "svhn_cropped": "label", "celeb_a": None, "lsun/church_outdoor": None}


@SOURCES.register("tfds")
def tfds_source(cfg: Mapping[str, Any]) -> Source:
  """A TensorFlow Datasets dataset (data.name), read by random access with `tfds.data_source`.

  Needs the optional extra: `pip install -e .[tfds]`. The dataset must already be prepared in
  the TFDS data dir (data.path, else TFDS's default) in ArrayRecord format.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("data.source='tfds' needs TensorFlow Datasets: pip install -e '.[tfds]'"
                      ) from None
  name = cfg["name"]
  try:
    ds = tfds.data_source(name, split=cfg["split"], data_dir=cfg["path"] or None,
                          download=False)
  except Exception as e:  # pylint: disable=broad-except
    raise FileNotFoundError(
        f"TFDS dataset {name!r} (split {cfg['split']!r}) is not available here ({e}). Prepare "
        f"it on a machine with network access with `tfds build {name} "
        f"--file_format=array_record` and copy the TFDS data dir here (pass it as "
        f"--config.data.path), or use an offline source: data.source='idx', 'npz', "
        f"'folder' or 'digits'.") from e
  label_key = TFDS_LABELS.get(name, "label")
  n = len(ds) if not cfg["num_examples"] else min(len(ds), cfg["num_examples"])
  first = ds[0]
  has_labels = label_key is not None and label_key in first

  def read(i):
    ex = ds[i]
    return np.asarray(ex["image"]), (int(ex[label_key]) if has_labels else None)

  source = LazySource(n, read, cfg["image_size"], _base_channels(cfg), cfg["resize"],
                      has_labels=has_labels)
  return _maybe_materialise(source, cfg)


def load_source(cfg: Mapping[str, Any], seed: int) -> Source:
  """The dataset described by the `data` config section (as a dict)."""
  check_choice(cfg["resize"], RESIZE_MODES, "data.resize")
  check_choice(cfg["channels"], (1, 3), "data.channels")
  if cfg["stacked"] and cfg["channels"] != 3:
    raise ConfigError("data.stacked=True makes colour images: set data.channels=3")
  source = SOURCES.get(cfg["source"], "data.source")(cfg)
  if cfg["stacked"]:
    source = StackedSource(source, seed)
  if len(source) == 0:
    raise ValueError(f"dataset {cfg['name']!r} ({cfg['source']}) is empty")
  return source
