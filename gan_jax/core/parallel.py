"""Data parallelism with `jax.jit` over a one-axis device mesh.

Why jit + sharding rather than pmap: the step is written for the global batch, and XLA
partitions it. Batch statistics (BatchNorm), means in the losses and gradients are computed
over the global batch with the collectives XLA inserts, so the result equals one device at the
same global batch size with no per-device code (no `pmean`, no replicated-state bookkeeping),
the same code runs on one or many hosts, and the state stays one global array per leaf.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gan_jax.core.registry import ConfigError

DATA_AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh over the first `num_devices` devices (0: all devices of all hosts)."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ConfigError(f"train.devices={num_devices} but only {len(devices)} devices exist")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_dim: int = 0) -> NamedSharding:
  """Sharding that splits dimension `batch_dim` over the mesh."""
  return NamedSharding(mesh, P(*([None] * batch_dim), DATA_AXIS))


def batch_constraint(mesh: Mesh):
  """Returns f(x) constraining a batch-major array to be split over the mesh."""
  sharding = batch_sharding(mesh)
  if mesh.size == 1:
    return lambda x: x
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)


def pad_batch(x: np.ndarray, size: int) -> np.ndarray:
  """Pads axis 0 of `x` with zeros to `size` rows, so a program compiled for batch `size`
  serves a smaller last chunk; the caller drops the padded rows of the result."""
  x = np.asarray(x)
  if len(x) > size:
    raise ValueError(f"batch of {len(x)} is larger than {size}")
  if len(x) == size:
    return x
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])
