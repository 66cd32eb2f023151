"""Image conversions (uint8 <-> [-1, 1]), grids, labelled panels and PNG files."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

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


def side_by_side(
  images: list[np.ndarray], gap: int = 8, labels: Sequence[str] | None = None
) -> np.ndarray:
  """Places (H_i, W_i, C) uint8 images left to right on a white canvas, tops aligned.

  Args:
    images: the panels.
    gap: white columns between panels.
    labels: a name per panel, written in black with PIL's default font in a header row of
      `header_height()` pixels above it (cut to the panel's width); None: no header.
  """
  channels = max(im.shape[-1] for im in images)
  images = [np.repeat(im, channels // im.shape[-1], axis=-1) for im in images]
  height = max(im.shape[0] for im in images)
  width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
  top = 0 if labels is None else header_height()
  canvas = np.full((top + height, width, channels), 255, np.uint8)
  if labels is not None and len(labels) != len(images):
    raise ValueError(f"{len(labels)} labels for {len(images)} panels")
  left = 0
  for i, im in enumerate(images):
    canvas[top : top + im.shape[0], left : left + im.shape[1]] = im
    if labels is not None:
      canvas[:top, left : left + im.shape[1]] = _label(labels[i], im.shape[1], top)[..., None]
    left += im.shape[1] + gap
  return canvas


def _font():
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top

  return ImageFont.load_default()


def header_height() -> int:
  """Pixels of the header row that `side_by_side(..., labels=...)` adds: a line of PIL's
  default font and a margin of 2 pixels above and below."""
  return _font().getbbox("Ag|")[3] + 4


def _label(text: str, width: int, height: int) -> np.ndarray:
  """`text` in black on white, centred in a (height, width) uint8 image (cut if wider)."""
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top

  font = _font()
  image = Image.new("L", (width, height), 255)
  text_width = font.getbbox(text)[2]
  ImageDraw.Draw(image).text((max(0, (width - text_width) // 2), 2), text, fill=0, font=font)
  return np.asarray(image)
