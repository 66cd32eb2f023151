"""Unpaired two-domain data for image translation (CycleGAN, Zhu et al. 2017).

Config: `data.source = "unpaired"` with sub-sections `data.domain_x` and `data.domain_y`, each
overriding fields of the `data` section for one domain (DOMAIN_FIELDS), e.g. scikit-learn's
digits (X) against MNIST (Y), or the two halves of a TFDS `cycle_gan/<pair>` dataset; both
domains share image_size and channels.

Splits: `data.split` (or the `split` argument of `domain_config`/`load_domains`) is the generic
"train" or "test"; each domain maps it to its own split name through its fields `train_split`
and `test_split` (default "train" and "test"; TFDS's cycle_gan pairs: trainA/testA for X,
trainB/testB for Y).

Jitter (the reference's `--preprocess resize_and_crop` and flip), on training batches only:
with `load_size` > 0 the training split is loaded at load_size x load_size and each batch row
is a random image_size x image_size window of it; with `flip` each row is mirrored left-right
with probability 1/2. Test-split images (`load_domains`) are resized straight to image_size.

Batches (`UnpairedBatches.iteration`), stacked over R = per_step:
  "image_x"  uint8 (R, B, H, W, C)  domain X, the whole set in a per-epoch order from (seed,
                                    epoch).
  "image_y"  uint8 (R, B, H, W, C)  domain Y, in its own order from (seed, epoch, stream):
                                    the domains are unpaired and cycle independently.
  "label_x", "label_y"  int32 (R, B) when the domain has labels (evaluation only).
Every batch, crop offsets and flips included, is a pure function of (seed, step), so a resumed
run sees the same batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from gan_jax.core.registry import ConfigError
from gan_jax.data.pipeline import Batches
from gan_jax.data.sources import SOURCES, Source, load_source

DOMAINS = ("x", "y")
# The stream of domain Y's order, independent of X's.
_Y_STREAM = 0xC7C1E
# The streams of the domains' crop offsets and flips: distinct from each other and, being
# nonzero last words, from every order's entropy.
_JITTER_STREAM = 0x717E5
_JITTER_DOMAIN = {"x": 0x58, "y": 0x59}
# Fields a domain's section may set; the others (image_size, channels) are shared.
DOMAIN_FIELDS = (
  "source",
  "name",
  "path",
  "resize",
  "num_examples",
  "stacked",
  "train_split",
  "test_split",
  "load_size",
  "flip",
)
# Defaults of the domain fields a domain's section does not set: those of the first group are
# the domain's own, those of the second the `data` section's when it sets them.
_DOMAIN_DEFAULTS = {
  "stacked": False,
  "num_examples": 0,
  "train_split": "train",
  "test_split": "test",
}
_SHARED_DEFAULTS = {"load_size": 0, "flip": False}
SPLITS = ("train", "test")


def domain_config(cfg: Mapping[str, Any], v: str, split: str | None = None) -> dict[str, Any]:
  """The data section of domain `v` ("x" or "y"): `cfg` with `cfg["domain_<v>"]` applied.

  Args:
    cfg: the `data` section (as a dict or ConfigDict).
    v: "x" or "y".
    split: "train" or "test"; None: `cfg["split"]`.

  Returns:
    The section a source loader reads; its "split" is the domain's own name of the split
    (its train_split or test_split field).

  Raises:
    ConfigError: a missing or unknown field, or a bad split, load_size or flip.
  """
  section = cfg.get(f"domain_{v}")
  if section is None:
    raise ConfigError(f"data.source='unpaired' needs a section data.domain_{v}")
  section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
  unknown = set(section) - set(DOMAIN_FIELDS)
  if unknown:
    raise ConfigError(
      f"data.domain_{v} has unknown fields {sorted(unknown)}; valid: {', '.join(DOMAIN_FIELDS)}"
    )
  out = {k: val for k, val in cfg.items() if not k.startswith("domain_")}
  out = {**_SHARED_DEFAULTS, **out, **_DOMAIN_DEFAULTS, **section}
  if out["source"] == "unpaired":
    raise ConfigError(f"data.domain_{v}.source cannot be 'unpaired'")

  def field(name):
    return f"data.domain_{v}.{name}" if name in section else f"data.{name}"

  generic = cfg.get("split", "train") if split is None else split
  if generic not in SPLITS:
    raise ConfigError(
      f"invalid split {generic!r} for data.source='unpaired' (config field data.split); "
      f"expected one of {', '.join(SPLITS)}, which each domain maps to its own split name "
      "(data.domain_<v>.train_split, data.domain_<v>.test_split)"
    )
  out["split"] = out[f"{generic}_split"]
  load_size, size = out["load_size"], out["image_size"]
  if (
    isinstance(load_size, bool)
    or not isinstance(load_size, (int, np.integer))
    or (load_size != 0 and not size <= load_size)
  ):
    raise ConfigError(
      f"invalid value {load_size!r} for config field {field('load_size')}; expected 0 (no "
      f"random crop) or an int >= data.image_size = {size} (training images are loaded at "
      "load_size and randomly cropped to image_size)"
    )
  if not isinstance(out["flip"], (bool, np.bool_)):
    raise ConfigError(
      f"invalid value {out['flip']!r} for config field {field('flip')}; expected True or False"
    )
  return out


@dataclasses.dataclass(frozen=True)
class Jitter:
  """The random crop and horizontal flip of one domain's training images.

  Attributes:
    size: side of the output images (data.image_size).
    load_size: side of the images the source holds; 0: `size` (no crop).
    flip: mirror each image left-right with probability 1/2.
  """

  size: int
  load_size: int = 0
  flip: bool = False

  @property
  def active(self) -> bool:
    """Whether it changes images at all."""
    return bool(self.load_size or self.flip)

  @property
  def source_size(self) -> int:
    """Side of the images the domain's training source is loaded at."""
    return self.load_size or self.size

  def centre(self, images: np.ndarray) -> np.ndarray:
    """The central windows (n, size, size, C) of images (n, source_size, source_size, C)."""
    start = (self.source_size - self.size) // 2
    return images[:, start : start + self.size, start : start + self.size]

  def draws(self, entropy: list[int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The crop offsets int (B, 2) (top, left) and flips bool (B,) of a global batch of B rows,
    a function of `entropy` only."""
    rng = np.random.default_rng(entropy)
    # Both are always drawn, so turning one on does not change the other's draws.
    offsets = rng.integers(0, self.source_size - self.size + 1, (batch_size, 2))
    flips = rng.random(batch_size) < 0.5
    return offsets, flips & self.flip

  def __call__(self, images: np.ndarray, offsets: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Images (n, source_size, source_size, C) -> (n, size, size, C): row i is the window at
    offsets[i], mirrored where flips[i]."""
    if not self.active:
      return images
    out = np.empty((len(images), self.size, self.size) + images.shape[3:], images.dtype)
    for i, (image, (top, left), flip) in enumerate(zip(images, offsets, flips)):
      window = image[top : top + self.size, left : left + self.size]
      out[i] = window[:, ::-1] if flip else window
    return out


def domain_jitter(cfg: Mapping[str, Any]) -> Jitter:
  """The Jitter of a domain's section (`domain_config`'s output) when training on it."""
  return Jitter(int(cfg["image_size"]), int(cfg["load_size"]), bool(cfg["flip"]))


class UnpairedSource:
  """The two domains' sources. As a source it is domain X ({"image", "label"}) at image_size
  (the central window when X is loaded larger for jitter), which is what the training loop's
  initialisation and real-image panels read; `x` and `y` are the domains as loaded.

  Attributes:
    x, y: the domains' sources, images (jitter.source_size, jitter.source_size, C).
    jitter: {"x", "y": Jitter} applied to training batches (`UnpairedBatches`).
  """

  def __init__(self, x: Source, y: Source, jitter: Mapping[str, Jitter] | None = None):
    self.x, self.y = x, y
    self.jitter = dict(jitter) if jitter else {}

  def __len__(self) -> int:
    return len(self.x)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    out = self.x[indices]
    if "x" in self.jitter:
      out = {**out, "image": self.jitter["x"].centre(out["image"])}
    return out


@SOURCES.register("unpaired")
def unpaired_source(cfg: Mapping[str, Any]) -> UnpairedSource:
  """Domains X and Y from data.domain_x and data.domain_y (see the module docstring); the
  train split is loaded at each domain's load_size for the jitter of training batches."""
  sources, jitter = [], {}
  for v in DOMAINS:
    domain = domain_config(cfg, v)
    if cfg.get("split", "train") == "train":
      jitter[v] = domain_jitter(domain)
      domain["image_size"] = jitter[v].source_size
    sources.append(load_source(domain, 0))
  return UnpairedSource(*sources, jitter=jitter)


def load_domains(cfg: Mapping[str, Any], seed: int, split: str) -> dict[str, np.ndarray]:
  """All images of split `split` ("train" or "test") of each domain, resized straight to
  image_size (no jitter): {"x", "y": uint8 (N, H, W, C)} (the fixed inputs of translation
  sample grids)."""
  out = {}
  for v in DOMAINS:
    source = load_source(domain_config(cfg, v, split), seed)
    out[v] = source[np.arange(len(source))]["image"]
  return out


class UnpairedBatches:
  """The batches of both domains, addressable by global batch index (layout in the module
  docstring). Each process reads only its own rows of every batch, and jitters them with the
  draws of those rows: the crop offsets and flips of a global batch are drawn from (seed,
  domain, index) for all its rows, so they do not depend on the number of processes.

  Attributes:
    per_epoch: batches per epoch of domain X.
  """

  def __init__(
    self,
    source: UnpairedSource,
    batch_size: int,
    seed: int,
    *,
    process_index: int = 0,
    process_count: int = 1,
  ):
    kwargs = dict(process_index=process_index, process_count=process_count)
    self.x = Batches(source.x, batch_size, seed, **kwargs)
    self.y = Batches(source.y, batch_size, seed, stream=_Y_STREAM, **kwargs)
    self.per_epoch = self.x.per_epoch
    self.jitter = source.jitter
    self.batch_size, self.seed = batch_size, seed
    local = batch_size // process_count
    self._rows = slice(process_index * local, (process_index + 1) * local)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    out = {}
    for v, batches in (("x", self.x), ("y", self.y)):
      part = batches[index]
      image = part["image"]
      if v in self.jitter and self.jitter[v].active:
        entropy = [self.seed, _JITTER_STREAM, index, _JITTER_DOMAIN[v]]
        offsets, flips = self.jitter[v].draws(entropy, self.batch_size)
        image = self.jitter[v](image, offsets[self._rows], flips[self._rows])
      out[f"image_{v}"] = image
      if "label" in part:
        out[f"label_{v}"] = np.asarray(part["label"], np.int32)
    return out

  def iteration(self, step: int, per_step: int) -> dict[str, np.ndarray]:
    """The stacked batches (R, B_local, ...) of training iteration `step` (R = per_step)."""
    if per_step < 1:
      raise ValueError(f"per_step={per_step} must be positive")
    parts = [self[step * per_step + r] for r in range(per_step)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}
