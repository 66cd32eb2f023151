"""Datasets: offline sources (IDX, scikit-learn digits, .npz, image folders), TFDS, stacking."""

from gan_jax.data.pipeline import Batches, iterate, put_global
from gan_jax.data.sources import (
  SOURCES,
  ArraySource,
  StackedSource,
  fit_image,
  fit_images,
  load_source,
  read_idx,
)

__all__ = [
  "SOURCES",
  "ArraySource",
  "Batches",
  "StackedSource",
  "fit_image",
  "fit_images",
  "iterate",
  "load_source",
  "put_global",
  "read_idx",
]
