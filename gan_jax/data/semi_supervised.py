"""Labelled subsets and the batches of semi-supervised training (Salimans et al. 2016, Sec. 5).

An iteration of the semi-supervised game reads three batches of B examples each, stacked over
R = per_step as `Batches.iteration` does (`SemiSupervisedBatches.iteration` returns this dict):

  "image"           uint8 (R, B, H, W, C)  unlabelled real images for D's loss: the whole
                                           training set in a per-epoch order (labels unused).
  "image_g"         uint8 (R, B, H, W, C)  a second, independently ordered unlabelled stream,
                                           the real side of G's feature matching (the released
                                           code's trainx_unl2).
  "labelled_image"  uint8 (R, B, H, W, C)  the labelled subset, cycled.
  "labelled_label"  int32 (R, B)           their labels.

Every batch is a pure function of (seed, step), so a resumed run sees the same batches. The
labelled subset is balanced, N/K examples of each of the K classes, and depends on the seed
only: example order is drawn once from the seed, and the first N/K examples of each class in
that order are taken (the released code's selection from its data seed). Within unlabelled
epoch e, the labelled stream is the subset repeated ceil(n / N) times, each copy in its own
order drawn from (seed, e, copy) (the released code's per-epoch tiling of permuted copies),
so every labelled example appears equally often.
"""

from __future__ import annotations

import numpy as np

from gan_jax.core.registry import ConfigError
from gan_jax.data.pipeline import Batches
from gan_jax.data.sources import Source
from gan_jax.data.unpaired import UnpairedBatches, UnpairedSource

# Streams of the run's seed (independent random orders of the same data).
_SUBSET_STREAM, _LABELLED_STREAM, _GENERATOR_STREAM = 0x1ABE1, 0x1AB, 0x6E2
_LABEL_CHUNK = 4096


def source_labels(source: Source) -> np.ndarray:
  """All labels (n,) int of a source, without keeping its images (read in chunks)."""
  labels = getattr(source, "labels", None)
  if labels is None:
    probe = source[np.zeros(1, np.int64)]
    if "label" not in probe:
      raise ConfigError("data.num_labels > 0 needs a dataset with labels; this one has none")
    labels = np.concatenate(
      [
        source[np.arange(lo, min(len(source), lo + _LABEL_CHUNK))]["label"]
        for lo in range(0, len(source), _LABEL_CHUNK)
      ]
    )
  return np.asarray(labels).astype(np.int64)


def balanced_subset(
  labels: np.ndarray, num_labels: int, seed: int, num_classes: int | None = None
) -> np.ndarray:
  """Indices (N,) of a class-balanced labelled subset: N/K examples of each class.

  Args:
    labels: integer labels (n,) of the whole training set, in [0, K).
    num_labels: N, a multiple of K.
    seed: the run's seed; the subset is a function of (labels, N, seed) only.
    num_classes: K (default: max label + 1).

  Returns:
    Example indices (N,) sorted by class, then by the seed's order.

  Raises:
    ConfigError: N is not a positive multiple of K, or a class has fewer than N/K examples.
  """
  labels = np.asarray(labels)
  k = int(num_classes or labels.max() + 1)
  if num_labels < 1 or num_labels % k:
    raise ConfigError(
      f"data.num_labels={num_labels} must be a positive multiple of the {k} classes "
      "(a balanced subset of N/K examples per class)"
    )
  per_class = num_labels // k
  order = np.random.default_rng([seed, _SUBSET_STREAM]).permutation(len(labels))
  chosen = []
  for c in range(k):
    of_class = order[labels[order] == c]
    if len(of_class) < per_class:
      raise ConfigError(
        f"data.num_labels={num_labels} needs {per_class} examples of class {c}; the "
        f"dataset has {len(of_class)}"
      )
    chosen.append(of_class[:per_class])
  return np.concatenate(chosen)


class SemiSupervisedBatches:
  """The three streams of the semi-supervised game, addressable by global batch index (the
  layout is in the module docstring). Each process reads only its own rows of every batch.

  Attributes:
    labelled: indices (N,) of the labelled subset in the source.
    per_epoch: batches per epoch of the unlabelled stream (n // B).
  """

  def __init__(
    self,
    source: Source,
    batch_size: int,
    seed: int,
    num_labels: int,
    *,
    num_classes: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
  ):
    self.unlabelled = Batches(
      source, batch_size, seed, process_index=process_index, process_count=process_count
    )
    self.generator = Batches(
      source,
      batch_size,
      seed,
      process_index=process_index,
      process_count=process_count,
      stream=_GENERATOR_STREAM,
    )
    self.source = source
    self.batch_size = batch_size
    self.seed = seed
    self.per_epoch = self.unlabelled.per_epoch
    self.labels = source_labels(source)
    self.labelled = balanced_subset(self.labels, num_labels, seed, num_classes)
    # Copies of the labelled subset per unlabelled epoch: enough for per_epoch batches.
    self._copies = -(-self.per_epoch * batch_size // len(self.labelled))
    self._rows = self.unlabelled._rows  # pylint: disable=protected-access
    self._cached: tuple[int, np.ndarray] | None = None

  def labelled_order(self, epoch: int) -> np.ndarray:
    """Source indices of the labelled stream in unlabelled epoch `epoch` (copies · N,)."""
    cached = self._cached
    if cached is not None and cached[0] == epoch:
      return cached[1]
    n = len(self.labelled)
    order = np.concatenate(
      [
        self.labelled[np.random.default_rng([self.seed, epoch, _LABELLED_STREAM, c]).permutation(n)]
        for c in range(self._copies)
      ]
    )
    self._cached = (epoch, order)
    return order

  def labelled_indices(self, index: int) -> np.ndarray:
    """Source indices (B_local,) of the labelled part of global batch `index`."""
    if index < 0:
      raise IndexError(f"batch index {index} < 0")
    epoch, pos = divmod(index, self.per_epoch)
    rows = self.labelled_order(epoch)[pos * self.batch_size : (pos + 1) * self.batch_size]
    return rows[self._rows]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    rows = self.labelled_indices(index)
    return {
      "image": self.unlabelled[index]["image"],
      "image_g": self.generator[index]["image"],
      "labelled_image": self.source[rows]["image"],
      "labelled_label": self.labels[rows].astype(np.int32),
    }

  def iteration(self, step: int, per_step: int) -> dict[str, np.ndarray]:
    """The stacked batches (R, B_local, ...) of training iteration `step` (R = per_step)."""
    if per_step < 1:
      raise ValueError(f"per_step={per_step} must be positive")
    parts = [self[step * per_step + r] for r in range(per_step)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def make_batches(
  data_cfg,
  source: Source,
  batch_size: int,
  seed: int,
  *,
  num_classes: int | None = None,
  process_index: int = 0,
  process_count: int = 1,
):
  """The batches a run trains on: `UnpairedBatches` of an unpaired two-domain source
  (`gan_jax.data.unpaired`, image translation), `SemiSupervisedBatches` when
  data.num_labels > 0 (the semi-supervised game), else the plain `Batches` of the source.

  Args:
    data_cfg: the `data` config section (a mapping; `num_labels` optional, 0 if absent).
    source: the training set.
    batch_size: global batch size B.
    seed: the run's seed.
    num_classes: K for the balanced subset (default: max label + 1).
    process_index: this process's index (multi-host).
    process_count: the number of processes.
  """
  if isinstance(source, UnpairedSource):
    return UnpairedBatches(
      source, batch_size, seed, process_index=process_index, process_count=process_count
    )
  num_labels = data_cfg.get("num_labels", 0) or 0
  if num_labels:
    return SemiSupervisedBatches(
      source,
      batch_size,
      seed,
      num_labels,
      num_classes=num_classes,
      process_index=process_index,
      process_count=process_count,
    )
  return Batches(source, batch_size, seed, process_index=process_index, process_count=process_count)
