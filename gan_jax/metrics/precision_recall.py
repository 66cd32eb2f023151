"""Improved precision and recall (Kynkäänniemi et al. 2019, Sec. 2, Eq. 1-2).

Each set's manifold is the union of balls around its feature vectors with radius the distance
to the k-th nearest neighbour within the set (k = 3 by default). Precision is the fraction of
generated samples inside the real manifold, recall the fraction of real samples inside the
generated manifold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gan_jax.core import parallel


def _sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
  """Squared Euclidean distances (M, N) between rows of a (M, D) and b (N, D)."""
  ab = jnp.dot(a, b.T, precision=jax.lax.Precision.HIGHEST)
  d = jnp.sum(a * a, 1)[:, None] - 2.0 * ab + jnp.sum(b * b, 1)[None, :]
  return jnp.maximum(d, 0.0)  # expansion round-off can go slightly negative


def _kth_radius(rows: jax.Array, ref: jax.Array, k: int) -> jax.Array:
  """Squared distance from each row (B, D) to its k-th nearest neighbour in ref (N, D), the
  row itself (distance 0) counting as the first, as in the reference code."""
  neg_top, _ = jax.lax.top_k(-_sq_distances(rows, ref), k + 1)
  return -neg_top[:, k]


def _covered(rows: jax.Array, centres: jax.Array, radii: jax.Array) -> jax.Array:
  """Whether each row (B, D) lies in some ball (centres (N, D), squared radii (N,))."""
  return jnp.any(_sq_distances(rows, centres) <= radii[None, :], axis=1)


def _rowwise(fn, rows: np.ndarray, *args, block: int, mesh: Mesh) -> np.ndarray:
  """Applies jitted fn(row block, *args) over row blocks split across devices."""
  block = max(mesh.size, -(-block // mesh.size) * mesh.size)
  jitted = jax.jit(
    fn, in_shardings=(parallel.batch_sharding(mesh),) + (parallel.replicated(mesh),) * len(args)
  )
  out = []
  for lo in range(0, len(rows), block):
    x = rows[lo : lo + block]
    n = len(x)
    if n < block:
      x = np.concatenate([x, np.repeat(x[:1], block - n, 0)])
    out.append(np.asarray(jax.device_get(jitted(x, *args)))[:n])
  return np.concatenate(out)


def manifold_radii(
  features: np.ndarray, k: int = 3, block: int = 1000, mesh: Mesh | None = None
) -> np.ndarray:
  """Squared k-NN radii (N,) of a feature set (N, D), N > k."""
  features = np.asarray(features, np.float32)
  if len(features) <= k:
    raise ValueError(f"need more than k={k} samples for the k-NN radii, got {len(features)}")
  mesh = mesh if mesh is not None else parallel.make_mesh()
  return _rowwise(lambda r, ref: _kth_radius(r, ref, k), features, features, block=block, mesh=mesh)


def precision_recall(
  real: np.ndarray, fake: np.ndarray, k: int = 3, block: int = 1000, mesh: Mesh | None = None
) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) of fake vs real features.

  Args:
    real: (N, D) features of real images.
    fake: (M, D) features of generated images.
    k: neighbourhood size of the manifold estimate.
    block: rows per device call (bounds memory to block x max(N, M) distances).

  Returns:
    (precision, recall) in [0, 1].
  """
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f"need feature sets (N, D) of equal D, got {real.shape}, {fake.shape}")
  mesh = mesh if mesh is not None else parallel.make_mesh()
  real_radii = manifold_radii(real, k, block, mesh)
  fake_radii = manifold_radii(fake, k, block, mesh)
  precision = _rowwise(_covered, fake, real, real_radii, block=block, mesh=mesh)
  recall = _rowwise(_covered, real, fake, fake_radii, block=block, mesh=mesh)
  return float(np.mean(precision)), float(np.mean(recall))
