"""GAN evaluation metrics in JAX: FID, KID, Inception score, improved precision/recall, the
FID Inception-v3 network, feature extractors and cached reference statistics.

Submodules: `fid`, `kid` (kid.kid), `inception_score` (inception_score.inception_score),
`precision_recall` (precision_recall.precision_recall), `inception`, `features`,
`reference_stats`. Importing this package loads no network weights; see
`gan_jax.metrics.inception` for fetching them and `gan_jax.evaluation` for the metrics of a
training run.
"""

from gan_jax.metrics import fid, inception_score, kid, precision_recall
from gan_jax.images import to_uint8
from gan_jax.metrics.features import EXTRACTORS, FeatureExtractor
from gan_jax.metrics.fid import (GaussianStats, fid_from_features, fid_from_stats,
                                 frechet_distance, gaussian_stats, trace_sqrt_product)

__all__ = ["EXTRACTORS", "FeatureExtractor", "GaussianStats", "fid", "fid_from_features",
           "fid_from_stats", "frechet_distance", "gaussian_stats", "inception_score", "kid",
           "precision_recall", "to_uint8", "trace_sqrt_product"]
