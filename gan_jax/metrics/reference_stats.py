"""Features and Gaussian statistics of real data, cached per dataset, split, sample count and
feature extractor.

The cache key hashes everything that determines the result: the data section's fields that
select and preprocess images (source, name, path, image size, channels, resize mode,
stacking), the split, the number of images, how they are drawn, the seed of a stacked set,
and the extractor's key (network and a hash of its weights). Changing any of them computes new
statistics; nothing is silently reused. The key and its fields are stored in the file and
checked again on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

from gan_jax import data as data_lib
from gan_jax.metrics import cache, frechet
from gan_jax.metrics.features import FeatureExtractor

# Bump when the way images are drawn or statistics are computed changes.
VERSION = 1
# Data fields that change which images are read or how they are preprocessed.
_DATA_FIELDS = (
  "source",
  "name",
  "path",
  "image_size",
  "channels",
  "resize",
  "stacked",
  "num_examples",
)


def reference_indices(size: int, n: int) -> np.ndarray:
  """The examples used for n reference images of a dataset of `size`: all of them if
  n >= size, else a fixed random subset (seed 0, sorted), the same for every run."""
  if n <= 0 or n >= size:
    return np.arange(size)
  return np.sort(np.random.default_rng(0).choice(size, n, replace=False))


def cache_key(
  data_cfg: Mapping[str, Any], split: str, n: int, extractor_key: str, seed: int
) -> tuple[str, dict[str, Any]]:
  """(hex key, the fields it hashes) for the reference statistics of this data."""
  fields = {f: data_cfg.get(f) for f in _DATA_FIELDS}
  path = fields["path"]
  if path and os.path.exists(path):
    # A file replaced in place must not reuse old statistics.
    st = os.stat(path)
    fields["path_mtime_size"] = (int(st.st_mtime), st.st_size)
  fields.update(
    split=split,
    n=n,
    extractor=extractor_key,
    version=VERSION,
    stack_seed=seed if data_cfg.get("stacked") else None,
  )
  blob = json.dumps(fields, sort_keys=True, default=str)
  return hashlib.sha1(blob.encode()).hexdigest()[:20], fields


def real_features(
  data_cfg: Mapping[str, Any],
  split: str,
  n: int,
  extractor: FeatureExtractor,
  seed: int = 0,
  cache_folder: str | None = None,
) -> dict[str, np.ndarray]:
  """Features of n real images of the data section's `split`, from the cache if there.

  Args:
    data_cfg: the `data` config section as a dict.
    split: "train" or "test".
    n: number of images (0 or more than the split has: all).
    extractor: computes the features.
    seed: the run's seed (pairs the images of a stacked dataset).
    cache_folder: default $GAN_JAX_CACHE/reference_stats.

  Returns:
    The extractor's outputs for the images, plus "mu" (D,) and "sigma" (D, D) float64 of
    "features".
  """
  key, fields = cache_key(data_cfg, split, n, extractor.key, seed)
  folder = cache_folder or cache.cache_dir("reference_stats")
  name = f"{data_cfg.get('name', 'data')}-{split}-{n}-{extractor.name}-{key}.npz"
  path = os.path.join(folder, name.replace("/", "_"))
  if os.path.isfile(path):
    with np.load(path) as f:
      stored = json.loads(str(f["__fields__"]))
      if stored == json.loads(json.dumps(fields, sort_keys=True, default=str)):
        return {k: f[k] for k in f.files if k != "__fields__"}
    logging.warning("reference statistics %s do not match their key; recomputing", path)
  source = data_lib.load_source(dict(data_cfg, split=split), seed)
  idx = reference_indices(len(source), n)
  logging.info(
    "computing %s reference features: %d %s images of %s",
    extractor.name,
    len(idx),
    split,
    data_cfg.get("name"),
  )
  images = np.concatenate([source[idx[i : i + 4096]]["image"] for i in range(0, len(idx), 4096)])
  out = extractor(images, log_every=10)
  stats = frechet.gaussian_stats(out["features"], mesh=extractor.mesh)
  out.update(mu=stats.mu, sigma=stats.sigma)
  cache.save_npz_atomic(
    path, __fields__=np.asarray(json.dumps(fields, sort_keys=True, default=str)), **out
  )
  return out
