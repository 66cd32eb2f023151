"""Deterministic, resumable batching and device prefetch.

The batch for a given global batch index is a pure function of (seed, index): epoch e shuffles
the examples with a permutation drawn from (seed, e). Iteration t consumes the R batches with
indices t*R ... t*R + R - 1 (R = n_critic), so resuming at step t needs no iterator state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from gan_jax.data.sources import Source


class Batches:
  """Batches of a source, addressable by global batch index.

  Each process reads only its own rows of every global batch (multi-host data parallelism).
  """

  def __init__(self, source: Source, batch_size: int, seed: int, *, process_index: int = 0,
               process_count: int = 1):
    if batch_size > len(source):
      raise ValueError(f"batch size {batch_size} exceeds the dataset size {len(source)} "
                       "(config field train.batch_size)")
    if batch_size % process_count:
      raise ValueError(f"batch size {batch_size} is not divisible by the {process_count} "
                       "processes (config field train.batch_size)")
    self.source = source
    self.batch_size = batch_size
    self.seed = seed
    self.per_epoch = len(source) // batch_size  # the last partial batch is dropped
    local = batch_size // process_count
    self._rows = slice(process_index * local, (process_index + 1) * local)
    self._perm_epoch, self._perm = -1, None

  def indices(self, index: int) -> np.ndarray:
    """Example indices of global batch `index` (this process's rows)."""
    epoch, pos = divmod(index, self.per_epoch)
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
      self._perm_epoch = epoch
    rows = self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]
    return rows[self._rows]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self.source[self.indices(index)]

  def iteration(self, step: int, per_step: int) -> dict[str, np.ndarray]:
    """The stacked batches (R, B, ...) of training iteration `step`."""
    parts = [self[step * per_step + r] for r in range(per_step)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def iterate(batches: Batches, start_step: int, per_step: int,
            put=lambda x: x, prefetch: int = 2) -> Iterator[Any]:
  """Yields `put(batches.iteration(t, per_step))` for t = start_step, start_step + 1, ...

  A background thread reads and transfers up to `prefetch` iterations ahead, so host work
  overlaps the device step.
  """
  q: queue.Queue = queue.Queue(maxsize=prefetch)
  stop = threading.Event()

  def worker():
    step = start_step
    try:
      while not stop.is_set():
        item = put(batches.iteration(step, per_step))
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        step += 1
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()


def put_global(batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding,
               global_batch_size: int) -> dict[str, jax.Array]:
  """Assembles process-local rows (R, B_local, ...) into global arrays (R, B, ...)."""
  def put(x):
    shape = (x.shape[0], global_batch_size) + x.shape[2:]
    return jax.make_array_from_process_local_data(sharding, x, shape)
  return {k: put(v) for k, v in batch.items()}
