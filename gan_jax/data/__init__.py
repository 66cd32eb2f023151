"""Datasets: offline sources (IDX, scikit-learn digits, .npz, image folders), TFDS, stacking,
the labelled subsets and batches of semi-supervised training, and unpaired two-domain
batches for image translation."""

from gan_jax.data.pipeline import Batches, iterate, put_global
from gan_jax.data.semi_supervised import (
  SemiSupervisedBatches,
  balanced_subset,
  make_batches,
  source_labels,
)
from gan_jax.data.sources import (
  SOURCES,
  ArraySource,
  StackedSource,
  fit_image,
  fit_images,
  load_source,
  read_idx,
)
from gan_jax.data.unpaired import UnpairedBatches, UnpairedSource, load_domains

__all__ = [
  "SOURCES",
  "ArraySource",
  "Batches",
  "SemiSupervisedBatches",
  "StackedSource",
  "UnpairedBatches",
  "UnpairedSource",
  "balanced_subset",
  "fit_image",
  "fit_images",
  "iterate",
  "load_domains",
  "load_source",
  "make_batches",
  "put_global",
  "read_idx",
  "source_labels",
]
