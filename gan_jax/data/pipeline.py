"""Deterministic, resumable batching and device prefetch.

The batch for a given global batch index is a pure function of (seed, index): epoch e shuffles
the examples with a permutation drawn from (seed, e). Iteration t consumes the R batches with
indices t*R ... t*R + R - 1 (R = n_critic), so resuming at step t needs no iterator state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from gan_jax.data.sources import Source


class Batches:
  """Batches of a source, addressable by global batch index.

  Each process reads only its own rows of every global batch (multi-host data parallelism).
  A nonzero `stream` draws the epochs' orders from (seed, epoch, stream) instead of (seed,
  epoch): an independent second pass over the same data (the semi-supervised game's second
  unlabelled batch).
  """

  def __init__(
    self,
    source: Source,
    batch_size: int,
    seed: int,
    *,
    process_index: int = 0,
    process_count: int = 1,
    stream: int = 0,
  ):
    if process_count < 1 or not 0 <= process_index < process_count:
      raise ValueError(
        f"process_index={process_index} must be in [0, process_count={process_count})"
      )
    if batch_size < 1:
      raise ValueError(f"batch size {batch_size} must be positive (config field train.batch_size)")
    if batch_size > len(source):
      raise ValueError(
        f"batch size {batch_size} exceeds the dataset size {len(source)} "
        "(config field train.batch_size; or use more of the dataset, "
        "data.num_examples)"
      )
    if batch_size % process_count:
      raise ValueError(
        f"batch size {batch_size} is not divisible by the {process_count} "
        "processes (config field train.batch_size)"
      )
    self.source = source
    self.batch_size = batch_size
    self.seed = seed
    self.stream = stream
    self.per_epoch = len(source) // batch_size  # the last partial batch is dropped
    local = batch_size // process_count
    self._rows = slice(process_index * local, (process_index + 1) * local)
    # (epoch, permutation) in one attribute, so a reader on another thread never pairs an
    # epoch with another epoch's permutation.
    self._cached_perm: tuple[int, np.ndarray] | None = None

  def permutation(self, epoch: int) -> np.ndarray:
    """The order (N,) of the examples in `epoch`, a function of (seed, epoch) only."""
    cached = self._cached_perm
    if cached is not None and cached[0] == epoch:
      return cached[1]
    entropy = [self.seed, epoch] + ([self.stream] if self.stream else [])
    perm = np.random.default_rng(entropy).permutation(len(self.source))
    self._cached_perm = (epoch, perm)
    return perm

  def indices(self, index: int) -> np.ndarray:
    """Example indices (B_local,) of global batch `index` (this process's rows)."""
    if index < 0:
      raise IndexError(f"batch index {index} < 0")
    epoch, pos = divmod(index, self.per_epoch)
    rows = self.permutation(epoch)[pos * self.batch_size : (pos + 1) * self.batch_size]
    return rows[self._rows]

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return self.source[self.indices(index)]

  def iteration(self, step: int, per_step: int) -> dict[str, np.ndarray]:
    """The stacked batches (R, B_local, ...) of training iteration `step` (R = per_step)."""
    if per_step < 1:
      raise ValueError(f"per_step={per_step} must be positive")
    parts = [self[step * per_step + r] for r in range(per_step)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def iterate(
  batches: Batches,
  start_step: int,
  per_step: int,
  put: Callable[[dict[str, np.ndarray]], Any] = lambda x: x,
  prefetch: int = 2,
) -> Iterator[Any]:
  """Yields `put(batches.iteration(t, per_step))` for t = start_step, start_step + 1, ...

  A background thread reads and transfers up to `prefetch` (at least 1) iterations ahead, so
  host work overlaps the device step. An exception in the thread is raised by `next()`;
  `close()` stops and joins the thread.
  """
  q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
  stop = threading.Event()

  def offer(item) -> None:
    # Blocks until there is room, but gives up once the consumer has gone, so the thread
    # never hangs on a full queue.
    while not stop.is_set():
      try:
        q.put(item, timeout=0.05)
        return
      except queue.Full:
        continue

  def worker():
    step = start_step
    try:
      while not stop.is_set():
        offer(put(batches.iteration(step, per_step)))
        step += 1
    except BaseException as e:  # pylint: disable=broad-except
      offer(e)

  thread = threading.Thread(target=worker, name="gan_jax-data", daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    thread.join()


def put_global(
  batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding, global_batch_size: int
) -> dict[str, jax.Array]:
  """Assembles process-local rows (R, B_local, ...) into global arrays (R, B, ...)."""

  def put(x):
    shape = (x.shape[0], global_batch_size) + x.shape[2:]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return {k: put(v) for k, v in batch.items()}
