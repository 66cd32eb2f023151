"""Image conversions (uint8 <-> [-1, 1]), grids and PNG files."""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] (N, H, W, C) -> uint8 [0, 255] on the host, quantised as the reference
  FID code does: round((x + 1) / 2 * 255), clipped.

  Raises:
    ValueError: the images contain NaN or Inf.
  """
  images = np.asarray(images, np.float32)
  if not np.all(np.isfinite(images)):
    raise ValueError("images contain NaN or Inf")
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1] (traceable); float input is passed through."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 127.5 - 1.0
  return images


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
  """Tiles images (N, H, W, C), uint8 or float in [-1, 1], into one (H', W', C) uint8 image."""
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.full(
    (rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8
  )
  for i, im in enumerate(images):
    r, col = divmod(i, columns)
    top, left = padding + r * (h + padding), padding + col * (w + padding)
    grid[top : top + h, left : left + w] = im
  return grid


def save_png(path: str, image: np.ndarray) -> None:
  """Writes an (H, W, C) uint8 image as PNG, creating the folder."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).save(path)


def side_by_side(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
  """Places (H_i, W_i, C) uint8 images left to right on a white canvas, tops aligned."""
  channels = max(im.shape[-1] for im in images)
  images = [np.repeat(im, channels // im.shape[-1], axis=-1) for im in images]
  height = max(im.shape[0] for im in images)
  width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
  canvas = np.full((height, width, channels), 255, np.uint8)
  left = 0
  for im in images:
    canvas[: im.shape[0], left : left + im.shape[1]] = im
    left += im.shape[1] + gap
  return canvas
