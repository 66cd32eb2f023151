"""Unpaired two-domain data: the TFDS cycle_gan pairs (mocked), the domains' split names, the
reference's training jitter (resize, random crop, random flip) and the pair configs."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data as data_lib
from gan_jax.configs import cyclegan as cyclegan_config
from gan_jax.core.registry import ConfigError
from gan_jax.data import sources, unpaired

SIZE, LOAD = 8, 10  # image_size and load_size of the tests: tiny, with a 3x3 choice of windows.


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


def _record_splits(tfds, monkeypatch) -> list[tuple[str, str]]:
  """Records (name, split) of every tfds.data_source call."""
  calls = []
  original = tfds.data_source

  def data_source(name, *, split, **kwargs):
    calls.append((name, split))
    return original(name, split=split, **kwargs)

  monkeypatch.setattr(tfds, "data_source", data_source)
  return calls


def _pair_config(arg: str = "horse2zebra,smoke"):
  config = configs.get("cyclegan", arg)
  config.data.image_size = SIZE
  config.data.load_size = LOAD
  config.model.n_blocks = 1
  config.cycle.pool_size = 3
  config.train.devices = 1
  return config


# ----------------------------------------------------------------------------- TFDS pairs


def test_tfds_pair_reads_trainA_as_x_trainB_as_y_and_the_test_splits(tfds, monkeypatch):
  calls = _record_splits(tfds, monkeypatch)
  cfg = _pair_config().data.to_dict()
  with tfds.testing.mock_data(num_examples=6):
    source = data_lib.load_source(cfg, 0)
    assert calls == [("cycle_gan/horse2zebra", "trainA"), ("cycle_gan/horse2zebra", "trainB")]
    raw = tfds.data_source("cycle_gan/horse2zebra", split="trainA")
    raw_x = [np.asarray(raw[i]["image"]) for i in range(len(raw))]
    del calls[:]
    test = data_lib.load_domains(cfg, 0, split="test")
    assert calls == [("cycle_gan/horse2zebra", "testA"), ("cycle_gan/horse2zebra", "testB")]
  assert isinstance(source, data_lib.UnpairedSource)
  assert len(source.x) == len(source.y) == 6
  # Training images are held at load_size; X as a source is their central windows.
  np.testing.assert_array_equal(source.x.images, sources.fit_images(raw_x, LOAD, 3, "resize"))
  assert source[np.arange(2)]["image"].shape == (2, SIZE, SIZE, 3)
  # The test split is resized straight to image_size; cycle_gan's label (the domain) is dropped.
  assert test["x"].shape == test["y"].shape == (6, SIZE, SIZE, 3)
  batch = data_lib.make_batches(cfg, source, 4, 0).iteration(0, 1)
  assert sorted(batch) == ["image_x", "image_y"]
  assert batch["image_x"].shape == (1, 4, SIZE, SIZE, 3)


# ----------------------------------------------------------------------------- jitter


def _npz_config(tmp_path, load_size=LOAD, flip=True, n=6, size=(12, 14)):
  """A pair of .npz domains of n random RGB images (size), in the cyclegan config."""
  rng = np.random.default_rng(0)
  raw = {}
  config = configs.get("cyclegan")
  config.data.image_size = SIZE
  config.data.channels = 3
  config.data.load_size = load_size
  config.data.flip = flip
  for v in ("x", "y"):
    raw[v] = rng.integers(0, 256, (n,) + size + (3,), dtype=np.uint8)
    path = str(tmp_path / f"{v}.npz")
    np.savez(path, images=raw[v])
    config.data[f"domain_{v}"] = dict(source="npz", name=v, path=path, resize="resize")
  return config.data.to_dict(), raw


def _windows(image: np.ndarray, size: int) -> list[tuple[int, int, bool, np.ndarray]]:
  """Every (top, left, flipped, window) of `image`, by hand."""
  side = image.shape[0]
  out = []
  for top, left, flip in itertools.product(range(side - size + 1), range(side - size + 1), (0, 1)):
    window = image[top : top + size, left : left + size]
    out.append((top, left, bool(flip), window[:, ::-1] if flip else window))
  return out


def test_jitter_crops_windows_of_the_resized_image_and_flips(tmp_path):
  cfg, raw = _npz_config(tmp_path)
  source = data_lib.load_source(cfg, 0)
  batches = data_lib.make_batches(cfg, source, 3, 0)
  seen = {"x": set(), "y": set()}
  for index in range(8):
    batch = batches[index]
    for v in ("x", "y"):
      part = batches.x if v == "x" else batches.y
      resized = sources.fit_images(raw[v][part.indices(index)], LOAD, 3, "resize")
      assert batch[f"image_{v}"].shape == (3, SIZE, SIZE, 3)
      for image, row in zip(resized, batch[f"image_{v}"]):
        matches = [w[:3] for w in _windows(image, SIZE) if np.array_equal(w[3], row)]
        assert matches, (v, index)
        seen[v].update(matches)
  for v in ("x", "y"):
    offsets = {(top, left) for top, left, _ in seen[v]}
    assert len(offsets) >= 5, offsets  # Of the 9 windows, over 24 rows.
    assert {flip for _, _, flip in seen[v]} == {False, True}


def test_jitter_is_a_function_of_seed_and_index(tmp_path):
  cfg, _ = _npz_config(tmp_path)
  source = data_lib.load_source(cfg, 0)
  batches = data_lib.make_batches(cfg, source, 4, 0)
  again = data_lib.make_batches(cfg, data_lib.load_source(cfg, 0), 4, 0)
  for index in (0, 3, 7):  # 7: a later epoch (one batch per epoch of 6 images).
    a, b = batches.iteration(index, 1), again.iteration(index, 1)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a["image_x"], batches.iteration(index + 1, 1)["image_x"])
  other_seed = data_lib.make_batches(cfg, source, 4, 1).iteration(0, 1)
  assert not np.array_equal(other_seed["image_x"], batches.iteration(0, 1)["image_x"])
  # Each process jitters its own rows as the single process does.
  rows = [
    data_lib.make_batches(cfg, source, 4, 0, process_index=p, process_count=2).iteration(5, 1)
    for p in (0, 1)
  ]
  whole = batches.iteration(5, 1)
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([r[key] for r in rows], axis=1), whole[key])


def test_crop_and_flip_draws_are_independent(tmp_path):
  """Turning flip on leaves the crops where they were; each domain draws its own."""
  crops = {}
  for flip in (False, True):
    cfg, raw = _npz_config(tmp_path, flip=flip)
    batches = data_lib.make_batches(cfg, data_lib.load_source(cfg, 0), 3, 0)
    batch = batches[2]
    resized = sources.fit_images(raw["x"][batches.x.indices(2)], LOAD, 3, "resize")
    crops[flip] = [
      next(w[:2] for w in _windows(image, SIZE) if np.array_equal(w[3], row))
      for image, row in zip(resized, batch["image_x"])
    ]
  assert crops[False] == crops[True]
  jitter = unpaired.Jitter(SIZE, LOAD, True)
  x = jitter.draws([0, 1, 2, 0x58], 64)
  y = jitter.draws([0, 1, 2, 0x59], 64)
  assert not np.array_equal(x[0], y[0])
  assert 0 < x[1].mean() < 1


def test_no_jitter_without_load_size_and_flip(tmp_path):
  cfg, raw = _npz_config(tmp_path, load_size=0, flip=False)
  source = data_lib.load_source(cfg, 0)
  batches = data_lib.make_batches(cfg, source, 3, 0)
  for index in range(3):
    batch = batches[index]
    for v, part in (("x", batches.x), ("y", batches.y)):
      expected = sources.fit_images(raw[v][part.indices(index)], SIZE, 3, "resize")
      np.testing.assert_array_equal(batch[f"image_{v}"], expected)


def test_evaluation_images_are_resized_straight_to_image_size(tmp_path):
  cfg, raw = _npz_config(tmp_path)
  for split in ("test", "train"):
    images = data_lib.load_domains(cfg, 0, split=split)
    for v in ("x", "y"):
      np.testing.assert_array_equal(images[v], sources.fit_images(raw[v], SIZE, 3, "resize"))
  # A non-training split of the source itself has no jitter either.
  source = data_lib.load_source(dict(cfg, split="test"), 0)
  assert source.x[np.arange(2)]["image"].shape == (2, SIZE, SIZE, 3)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
  "field, value, name",
  [
    ("load_size", SIZE - 1, "data.load_size"),
    ("load_size", -1, "data.load_size"),
    ("load_size", 9.5, "data.load_size"),
    ("flip", "yes", "data.flip"),
    ("domain_x.load_size", 4, "data.domain_x.load_size"),
    ("split", "validation", "data.split"),
  ],
)
def test_bad_jitter_or_split_is_a_config_error(tmp_path, field, value, name):
  cfg, _ = _npz_config(tmp_path)
  *section, key = field.split(".")
  (cfg[section[0]] if section else cfg)[key] = value
  with pytest.raises(ConfigError, match=name.replace(".", r"\.")) as err:
    data_lib.load_source(cfg, 0)
  assert "\n" not in str(err.value)


def test_bad_load_size_fails_at_start_up():
  from gan_jax import spec as spec_lib
  from gan_jax.core import parallel

  config = _pair_config()
  config.data.load_size = SIZE - 2
  with pytest.raises(ConfigError, match=r"data\.load_size"):
    spec_lib.build_spec(config, mesh=parallel.make_mesh(1))


def test_domain_split_field_is_gone():
  config = configs.get("cyclegan")
  config.data.domain_x.split = "test"
  with pytest.raises(ConfigError, match="train_split"):
    unpaired.domain_config(config.data, "x")


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("pair", sorted(cyclegan_config.PAIRS))
def test_every_pair_config_loads(pair):
  train_a, train_b = cyclegan_config.PAIRS[pair]["train_examples"] or (0, 0)
  for extra in ("", ",shared_encoder", ",smoke", ",shared_encoder,smoke"):
    config = configs.get("cyclegan", pair + extra)
    assert config.model.shared_encoder == ("shared_encoder" in extra)
    assert config.data.name == pair
    x = unpaired.domain_config(config.data, "x", "test")
    y = unpaired.domain_config(config.data, "y", "train")
    if pair == "digits_mnist":
      assert (config.data.load_size, config.data.flip) == (0, False)
      assert (x["split"], y["split"]) == ("test", "train")
      continue
    assert (x["name"], x["split"], y["split"]) == (f"cycle_gan/{pair}", "testA", "trainB")
    assert config.data.flip is True and config.data.channels == 3
    if "smoke" in extra:
      assert (config.data.image_size, config.data.load_size) == (16, 18)
      assert config.train.steps == 6
      continue
    assert (config.data.image_size, config.data.load_size) == (256, 286)
    assert (config.model.width, config.model.n_blocks) == (64, 9)
    assert (config.model.discriminator_width, config.model.discriminator_layers) == (64, 3)
    assert config.train.batch_size == 1 and config.cycle.identity_weight == 0.5
    epoch = max(train_a, train_b)
    assert config.train.steps == 200 * epoch
    for optim in config.optim.values():
      assert (optim.lr_decay_start, optim.lr_decay_end) == (100 * epoch, 200 * epoch)


def test_default_pair_is_digits_mnist():
  assert configs.get("cyclegan").to_dict() == configs.get("cyclegan", "digits_mnist").to_dict()
  assert configs.get("cyclegan").data.name == "digits_mnist"
  with pytest.raises(ValueError, match="horse2zebra"):
    configs.get("cyclegan", "horse2zebra,maps")
