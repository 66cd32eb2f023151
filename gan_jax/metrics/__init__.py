"""GAN evaluation metrics in JAX: FID, KID, Inception score, improved precision/recall, the
FID Inception-v3 network, feature extractors and cached reference statistics.

  gan_jax.metrics.fid(images_a, images_b)   # FID of two uint8 arrays (N, H, W, C)

Submodules: `frechet` (FID from features or statistics; `fid` itself lives there), `kid`
(kid.kid), `inception_score` (inception_score.inception_score), `precision_recall`
(precision_recall.precision_recall), `inception`, `features`, `reference_stats`. Importing
this package loads no network weights; see `gan_jax.metrics.inception` for fetching them and
`gan_jax.evaluation` for the metrics of a training run.
"""

from gan_jax.images import to_uint8
from gan_jax.metrics import frechet, inception_score, kid, precision_recall
from gan_jax.metrics.features import EXTRACTORS, FeatureExtractor
from gan_jax.metrics.frechet import (
  GaussianStats,
  fid,
  fid_from_features,
  fid_from_stats,
  fid_to_stats,
  frechet_distance,
  gaussian_stats,
  trace_sqrt_product,
)

__all__ = [
  "EXTRACTORS",
  "FeatureExtractor",
  "GaussianStats",
  "fid",
  "fid_from_features",
  "fid_from_stats",
  "fid_to_stats",
  "frechet",
  "frechet_distance",
  "gaussian_stats",
  "inception_score",
  "kid",
  "precision_recall",
  "to_uint8",
  "trace_sqrt_product",
]
