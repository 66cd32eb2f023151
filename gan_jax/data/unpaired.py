"""Unpaired two-domain data for image translation (CycleGAN, Zhu et al. 2017).

Config: `data.source = "unpaired"` with sub-sections `data.domain_x` and `data.domain_y`, each
overriding fields of the `data` section for one domain (source, name, path, split, resize,
num_examples), e.g. scikit-learn's digits (X) against MNIST (Y); both domains share
image_size and channels.

Batches (`UnpairedBatches.iteration`), stacked over R = per_step:
  "image_x"  uint8 (R, B, H, W, C)  domain X, the whole set in a per-epoch order from (seed,
                                    epoch).
  "image_y"  uint8 (R, B, H, W, C)  domain Y, in its own order from (seed, epoch, stream):
                                    the domains are unpaired and cycle independently.
  "label_x", "label_y"  int32 (R, B) when the domain has labels (evaluation only).
Every batch is a pure function of (seed, step), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gan_jax.core.registry import ConfigError
from gan_jax.data.pipeline import Batches
from gan_jax.data.sources import SOURCES, Source, load_source

DOMAINS = ("x", "y")
# The stream of domain Y's order, independent of X's.
_Y_STREAM = 0xC7C1E
# Fields a domain's section may set; the others (image_size, channels) are shared.
DOMAIN_FIELDS = ("source", "name", "path", "split", "resize", "num_examples", "stacked")


def domain_config(cfg: Mapping[str, Any], v: str, split: str | None = None) -> dict[str, Any]:
  """The data section of domain `v` ("x" or "y"): `cfg` with `cfg["domain_<v>"]` applied."""
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
  out.update({"stacked": False, "num_examples": 0, **section})
  if out["source"] == "unpaired":
    raise ConfigError(f"data.domain_{v}.source cannot be 'unpaired'")
  if split is not None:
    out["split"] = split
  return out


class UnpairedSource:
  """The two domains' sources. As a source it is domain X ({"image", "label"}), which is what
  the training loop's initialisation and real-image panels read; `x` and `y` are the domains.
  """

  def __init__(self, x: Source, y: Source):
    self.x, self.y = x, y

  def __len__(self) -> int:
    return len(self.x)

  def __getitem__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return self.x[indices]


@SOURCES.register("unpaired")
def unpaired_source(cfg: Mapping[str, Any]) -> UnpairedSource:
  """Domains X and Y from data.domain_x and data.domain_y (see the module docstring)."""
  return UnpairedSource(*(load_source(domain_config(cfg, v), 0) for v in DOMAINS))


def load_domains(cfg: Mapping[str, Any], seed: int, split: str) -> dict[str, np.ndarray]:
  """All images of split `split` of each domain, {"x", "y": uint8 (N, H, W, C)} (the fixed
  inputs of translation sample grids)."""
  out = {}
  for v in DOMAINS:
    source = load_source(domain_config(cfg, v, split), seed)
    out[v] = source[np.arange(len(source))]["image"]
  return out


class UnpairedBatches:
  """The batches of both domains, addressable by global batch index (layout in the module
  docstring). Each process reads only its own rows of every batch.

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

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    out = {}
    for v, batches in (("x", self.x), ("y", self.y)):
      part = batches[index]
      out[f"image_{v}"] = part["image"]
      if "label" in part:
        out[f"label_{v}"] = np.asarray(part["label"], np.int32)
    return out

  def iteration(self, step: int, per_step: int) -> dict[str, np.ndarray]:
    """The stacked batches (R, B_local, ...) of training iteration `step` (R = per_step)."""
    if per_step < 1:
      raise ValueError(f"per_step={per_step} must be positive")
    parts = [self[step * per_step + r] for r in range(per_step)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}
