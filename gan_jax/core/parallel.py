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
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gan_jax.core.registry import ConfigError

DATA_AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh over `num_devices` devices (0: all devices of all processes).

  The devices are grouped by process, each process's devices one contiguous block in process
  order, so that process p feeds rows p·B/P ... (p+1)·B/P - 1 of a global batch of B rows
  (what `gan_jax.data.Batches` reads; P processes). In a multi-process run, `num_devices` is
  taken evenly from every process, as each one feeds its own devices.

  Raises:
    ConfigError: more devices asked for than exist, or a count that the processes cannot
      share evenly.
  """
  # A stable sort: within a process (and in a one-process run) JAX's order is kept.
  devices = sorted(jax.devices(), key=lambda d: d.process_index)
  if num_devices:
    if num_devices > len(devices):
      raise ConfigError(f"train.devices={num_devices} but only {len(devices)} devices exist")
    count = jax.process_count()
    if num_devices % count:
      raise ConfigError(
        f"train.devices={num_devices} is not divisible by the {count} processes "
        "(each process runs on the same number of its devices; 0 = all)"
      )
    per_process = num_devices // count
    by_process = [[d for d in devices if d.process_index == p] for p in range(count)]
    if min(len(own) for own in by_process) < per_process:
      raise ConfigError(
        f"train.devices={num_devices} needs {per_process} devices in each of the {count} "
        f"processes; one has {min(len(own) for own in by_process)}"
      )
    devices = [d for own in by_process for d in own[:per_process]]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_mesh(mesh: Mesh) -> Mesh:
  """`mesh` itself in a one-process run, else a 1-D mesh over this process's devices of it:
  for work that each process does whole on its own devices (e.g. an evaluation's feature
  extraction, whose host inputs and outputs are the whole arrays)."""
  if jax.process_count() == 1:
    return mesh
  own = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
  return Mesh(np.asarray(own), (DATA_AXIS,))


def to_host(tree):
  """The values of a pytree of arrays as NumPy arrays, in every process.

  A fully replicated or process-local array is read from this process's devices; an array
  split over the devices of several processes is gathered (a collective: every process must
  call this with the same arrays).
  """

  def fetch(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
      return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(fetch, tree)


def broadcast_scalars(values: dict[str, float]) -> dict[str, float]:
  """Process 0's `values` in every process (a collective: every process calls it with the
  keys in the same order); `values` itself in a one-process run."""
  if jax.process_count() == 1:
    return dict(values)
  keys = list(values)
  # As int32 pairs: without jax_enable_x64, float64 would travel as float32.
  raw = np.asarray([float(values[k]) for k in keys], np.float64).view(np.int32)
  raw = np.asarray(multihost_utils.broadcast_one_to_all(raw), np.int32)
  return dict(zip(keys, (float(v) for v in raw.view(np.float64))))


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
