"""Fréchet distance between Gaussians fitted to features (Heusel et al. 2017, Eq. 6).

  FID = ||μ_1 - μ_2||² + Tr(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2})

The feature moments are accumulated on the devices (jit-compiled, batch split over the mesh);
the distance itself is computed on the host in float64. Tr((Σ_1 Σ_2)^{1/2}) equals
Tr((Σ_1^{1/2} Σ_2 Σ_1^{1/2})^{1/2}), the trace of the square root of a symmetric PSD matrix, so
it is the sum of square roots of eigenvalues from two symmetric eigendecompositions: real by
construction, stable for the rank-deficient covariances of few samples, and faster than the
general `scipy.linalg.sqrtm` (Schur) that the reference uses, which it matches (tests).

`fid(images_a, images_b)` is the whole computation for two sets of uint8 images: Inception
pool3 features (`gan_jax.metrics.features`, cached weights), then the distance.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gan_jax.core import parallel
from gan_jax.metrics import features as features_lib


@dataclasses.dataclass(frozen=True)
class GaussianStats:
  """Mean (D,) and covariance (D, D) of n feature vectors, float64."""

  mu: np.ndarray
  sigma: np.ndarray
  n: int


def _moments(x: jax.Array, shift: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sum (D,) and Gram matrix (D, D) of x - shift for a chunk x (B, D).

  Subtracting a shift close to the mean first keeps float32 sums of products from cancelling
  (the naive E[xx^T] - μμ^T loses most digits for features with a large mean).
  """
  c = x - shift
  return jnp.sum(c, axis=0), jnp.dot(c.T, c, precision=jax.lax.Precision.HIGHEST)


def gaussian_stats(
  features: np.ndarray, chunk: int = 1000, mesh: Mesh | None = None
) -> GaussianStats:
  """Mean and unbiased covariance (as `np.cov`) of features (N, D), N >= 2.

  Chunks of `chunk` rows are reduced on the devices (rows split over `mesh`), and the partial
  sums accumulated in float64 on the host.
  """
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f"need features (N >= 2, D), got shape {features.shape}")
  n, d = features.shape
  mesh = mesh if mesh is not None else parallel.make_mesh()
  chunk = max(mesh.size, -(-min(chunk, n) // mesh.size) * mesh.size)
  shift = features[: min(n, chunk)].mean(0)
  fn = jax.jit(_moments, in_shardings=(parallel.batch_sharding(mesh), parallel.replicated(mesh)))
  total = np.zeros(d, np.float64)
  gram = np.zeros((d, d), np.float64)
  for lo in range(0, n, chunk):
    x = features[lo : lo + chunk]
    if len(x) < chunk:
      # Rows equal to the shift contribute nothing to either sum.
      x = np.concatenate([x, np.broadcast_to(shift, (chunk - len(x), d))])
    s, g = jax.device_get(fn(x, shift))
    total += s
    gram += g
  mean_c = total / n
  sigma = (gram - n * np.outer(mean_c, mean_c)) / (n - 1)
  return GaussianStats(mu=shift.astype(np.float64) + mean_c, sigma=(sigma + sigma.T) / 2, n=n)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
  w, v = np.linalg.eigh(a)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """Tr((Σ_1 Σ_2)^{1/2}) for symmetric PSD Σ_1, Σ_2, in float64."""
  s1 = np.asarray(sigma1, np.float64)
  s2 = np.asarray(sigma2, np.float64)
  r = _sqrt_psd(s1)
  m = r @ s2 @ r
  eig = np.linalg.eigvalsh((m + m.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eig, 0, None))))


def frechet_distance(
  mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
  """Fréchet distance between N(μ_1, Σ_1) and N(μ_2, Σ_2) (Heusel et al. 2017, Eq. 6)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != 2 * mu1.shape:
    raise ValueError(
      f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma "
      f"{sigma1.shape} vs {sigma2.shape}"
    )
  diff = mu1 - mu2
  value = (
    diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
  )
  # Round-off can take a distance of identical statistics a hair below zero.
  return float(max(value, 0.0))


def fid_from_stats(a: GaussianStats, b: GaussianStats) -> float:
  """FID between two sets of feature statistics."""
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def _fid_few_samples(x: np.ndarray, y: np.ndarray) -> float:
  """FID between x (N, D) and y (M, D) for N, M <= D, without any (D, D) matrix.

  With A = (x - μ_x) / √(N - 1) (N, D) and B likewise, Σ_x = AᵀA and Σ_y = BᵀB, so
  Tr Σ_x = ‖A‖²_F and the non-zero eigenvalues of Σ_x Σ_y are those of C Cᵀ, C = A Bᵀ (N, M):
  Tr((Σ_x Σ_y)^{1/2}) is the sum of the singular values of C.
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  mu_x, mu_y = x.mean(0), y.mean(0)
  a = (x - mu_x) / np.sqrt(len(x) - 1)
  b = (y - mu_y) / np.sqrt(len(y) - 1)
  diff = mu_x - mu_y
  trace_sqrt = np.sum(np.linalg.svd(a @ b.T, compute_uv=False))
  value = diff @ diff + np.sum(a * a) + np.sum(b * b) - 2.0 * trace_sqrt
  return float(max(value, 0.0))


def fid_from_features(x: np.ndarray, y: np.ndarray, mesh: Mesh | None = None) -> float:
  """FID between feature sets x (N, D) and y (M, D), N, M >= 2.

  With no more samples than dimensions in either set (e.g. a few images' 2048-d Inception
  features) it is computed from the (N, M) cross product of the centred features, which is
  exact and avoids the (D, D) eigendecompositions that dominate the cost at small N.
  """
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
    raise ValueError(
      f"need features (N >= 2, D) and (M >= 2, D), got shapes {x.shape} and {y.shape}"
    )
  if max(len(x), len(y)) <= x.shape[1]:
    return _fid_few_samples(x, y)
  return fid_from_stats(gaussian_stats(x, mesh=mesh), gaussian_stats(y, mesh=mesh))


def fid_to_stats(x: np.ndarray, reference: GaussianStats, mesh: Mesh | None = None) -> float:
  """FID between features x (N, D), N >= 2, and a reference's statistics (e.g. cached ones).

  With N <= D, Σ_x = BᵀB for the centred B = (x - μ_x) / √(N - 1) (N, D), and the non-zero
  eigenvalues of Σ_x Σ_r are those of the symmetric PSD B Σ_r Bᵀ (N, N): Tr((Σ_x Σ_r)^{1/2}) is
  the sum of their square roots. Exact, and one (N, D, D) product instead of two (D, D)
  eigendecompositions: for 500 Inception features, a fraction of the cost.
  """
  x = np.asarray(x)
  d = reference.mu.shape[0]
  if x.ndim != 2 or x.shape[1] != d or len(x) < 2:
    raise ValueError(f"need features (N >= 2, {d}), got shape {x.shape}")
  if len(x) > d:
    return fid_from_stats(gaussian_stats(x, mesh=mesh), reference)
  x = x.astype(np.float64)
  mu_x = x.mean(0)
  b = (x - mu_x) / np.sqrt(len(x) - 1)
  m = b @ np.asarray(reference.sigma, np.float64) @ b.T
  eig = np.linalg.eigvalsh((m + m.T) / 2)
  diff = mu_x - reference.mu
  value = (
    diff @ diff
    + np.sum(b * b)
    + np.trace(reference.sigma)
    - 2.0 * np.sum(np.sqrt(np.clip(eig, 0, None)))
  )
  return float(max(value, 0.0))


@functools.lru_cache(maxsize=1)
def _inception(batch_size: int, mesh: Mesh) -> features_lib.FeatureExtractor:
  # Kept for the next call: loading the weights and compiling the network cost far more than
  # the features of a few images.
  return features_lib.EXTRACTORS.get("inception")({"batch_size": batch_size}, mesh)


def fid(
  images_a: np.ndarray, images_b: np.ndarray, *, batch_size: int = 50, mesh: Mesh | None = None
) -> float:
  """The FID of two sets of images: Inception pool3 features, then the Fréchet distance.

  The features are the "inception" extractor's (`gan_jax.metrics.features`) with the FID
  weights from the cache (`python -m gan_jax.metrics.inception --download` fetches them);
  grayscale images are repeated into RGB, as the extractor does for any one-channel input.

  Args:
    images_a: uint8 images (N, H, W, C), C in {1, 3}, N >= 2 (convert generator outputs in
      [-1, 1] with `gan_jax.images.to_uint8`).
    images_b: uint8 images (M, H', W', C'), M >= 2; sizes may differ from `images_a`'s.
    batch_size: at most this many images per network call (split over the devices).
    mesh: devices to run on (default: all).

  Returns:
    The FID, a float >= 0.

  Raises:
    FileNotFoundError: the Inception weights are not in the cache; the message says how to
      fetch them.
    ValueError: images that are not uint8 (N, H, W, C), or fewer than two in a set.
  """
  a, b = np.asarray(images_a), np.asarray(images_b)
  for name, x in (("images_a", a), ("images_b", b)):
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) < 2:
      raise ValueError(f"{name} must be uint8 (N >= 2, H, W, C), got {x.dtype} {x.shape}")
  same_shape = a.shape[1:] == b.shape[1:]
  mesh = mesh if mesh is not None else parallel.make_mesh()
  # A few images are not padded to a full batch; rounding to the device count here (as the
  # extractor would) lets calls with similar counts share the cached extractor.
  largest = len(a) + len(b) if same_shape else max(len(a), len(b))
  extractor = _inception(-(-min(batch_size, largest) // mesh.size) * mesh.size, mesh)
  if same_shape:
    # One pass over both sets, so one compiled program serves both.
    features = extractor(np.concatenate([a, b]))["features"]
    fa, fb = features[: len(a)], features[len(a) :]
  else:
    fa, fb = extractor(a)["features"], extractor(b)["features"]
  return fid_from_features(fa, fb, mesh=extractor.mesh)
