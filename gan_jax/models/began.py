"""BEGAN's networks (Berthelot et al. 2017, Sec. 3.5 and Fig. 1): an auto-encoder D and a
generator G with the architecture of D's decoder.

Encoder: a 3x3 conv, then per scale two 3x3 conv + ELU layers with n, 2n, 3n, ... filters
(linear growth), a stride-2 3x3 conv + ELU between scales that raises the filter count to the
next scale's, and a fully connected layer to the embedding h (N_h, no activation) from an 8x8
map. Decoder: a fully connected layer h -> h0 (8x8xn), per scale two 3x3 conv + ELU layers
with n filters and nearest-neighbour 2x upsampling between scales, and a final 3x3 conv to the
image (no activation, as in the paper's Fig. 1). Image sizes are 8·2^k (32: three scales, 64:
four, ...): "adding or removing convolution layers to adjust for the image size, keeping a
constant final down-sampled image size of 8x8" (Sec. 4).

Optional refinements (Sec. 3.5.1):
  skip connections   h0 upsampled to the current size is concatenated to the input of every
                     scale after an upsampling (decoder and G).
  vanishing residual every layer whose input and output have the same shape outputs
                     carry·in + (1 - carry)·out; `carry` is a static attribute that
                     `gan_jax.stabilisers.began`'s `vanishing_residual` stabiliser anneals
                     from 1 to 0.

D's `__call__` returns the per-sample auto-encoder loss L(v) = mean over pixels of
|v - D(v)|^η (Sec. 3.1, Eq. 1), so the game's `d_real` and `d_fake` are L(x) and L(G(z)).

Every module takes `dtype`, the dtype of its activations (train.compute_dtype); parameters
are float32, and the images (G's output, D's reconstruction), the embedding h and L(v), which
enter losses, are float32.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core.registry import ConfigError
from gan_jax.models.conv import StridedConv
from gan_jax.models.initializers import INITIALIZERS

BASE_SIZE = 8


def num_scales(image_size: int) -> int:
  """Number of resolutions k + 1 with image_size == 8·2^k (BEGAN Sec. 4: the encoder always
  ends at 8x8)."""
  size, scales = image_size, 1
  while size > BASE_SIZE and size % 2 == 0:
    size, scales = size // 2, scales + 1
  if size != BASE_SIZE:
    raise ConfigError(
      f"BEGAN needs an image size 8·2^k (8, 16, 32, 64, ...), got {image_size} "
      "(config field data.image_size)"
    )
  return scales


def upsample(x: jax.Array, factor: int) -> jax.Array:
  """Nearest-neighbour upsampling of (B, H, W, C) to (B, H·f, W·f, C) (BEGAN Sec. 3.5)."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class _Layer(nn.Module):
  """A 3x3 conv + ELU layer, with BEGAN's vanishing residual (Sec. 3.5.1,
  in_{x+1} = carry·in_x + (1 - carry)·out_x) when input and output shapes agree."""

  features: int
  carry: float
  kernel_init: nn.initializers.Initializer
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, C) to (B, H/s, W/s, features)."""
    # nn.Conv(padding="SAME")'s layer and parameters, with derivatives that stay on XLA:CPU's
    # fast kernels at any batch size (gan_jax/models/conv.py).
    out = nn.elu(
      StridedConv(
        self.features,
        (3, 3),
        (self.strides, self.strides),
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        name="conv",
      )(x)
    )
    # carry is static: with carry 0 (no residual, the paper's plain network) the mix is skipped.
    if self.carry and out.shape == x.shape:
      out = self.carry * x.astype(out.dtype) + (1.0 - self.carry) * out
    return out


def _layer_factory(init_scheme: str, carry: float, dtype: Any):
  """The kernel initialiser named `init_scheme` and a `_Layer` constructor that uses it and
  computes in `dtype`."""
  kernel_init, _ = INITIALIZERS.get(init_scheme, "model.init")
  return kernel_init, functools.partial(_Layer, carry=carry, kernel_init=kernel_init, dtype=dtype)


class Decoder(nn.Module):
  """BEGAN's decoder and generator (Sec. 3.5, Fig. 1): h or z (B, N) -> images (B, H, W, C).

  Attributes:
    image_size: output height and width, 8·2^k.
    channels: output channels.
    width: n, the filters of every decoder layer.
    skip: concatenate h0 upsampled after every upsampling (Sec. 3.5.1).
    carry: vanishing-residual carry in [0, 1] (0: plain layers).
    init_scheme: initialiser name (`INITIALIZERS`).
    dtype: the dtype of the activations; the images are returned in float32.
  """

  image_size: int = 32
  channels: int = 1
  width: int = 64
  skip: bool = False
  carry: float = 0.0
  init_scheme: str = "xavier"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, train: bool = True) -> jax.Array:
    """BEGAN Fig. 1 (decoder): maps h (B, N) to images (B, H, W, channels); `train` is unused
    (no batch statistics), kept for the game's calling convention."""
    del train
    kernel_init, layer = _layer_factory(self.init_scheme, self.carry, self.dtype)
    h0 = nn.Dense(
      BASE_SIZE * BASE_SIZE * self.width, kernel_init=kernel_init, dtype=self.dtype, name="project"
    )(h)
    h0 = h0.reshape(h.shape[0], BASE_SIZE, BASE_SIZE, self.width)
    x = h0
    for i in range(num_scales(self.image_size)):
      if i:
        x = upsample(x, 2)
        if self.skip:
          x = jnp.concatenate([x, upsample(h0, 2**i)], axis=-1)
      x = layer(self.width, name=f"scale{i}_conv0")(x)
      x = layer(self.width, name=f"scale{i}_conv1")(x)
    image = StridedConv(
      self.channels, (3, 3), (1, 1), kernel_init=kernel_init, dtype=self.dtype, name="to_image"
    )(x)
    # G's images and D's reconstruction enter losses (L(v) = |v - D(v)|^η): float32.
    return image.astype(jnp.float32)


class Encoder(nn.Module):
  """BEGAN's encoder (Sec. 3.5, Fig. 1): images (B, H, W, C) -> h (B, N_h).

  Attributes:
    width: n; scale i has (i + 1)·n filters.
    hidden_dim: N_h.
    carry: vanishing-residual carry in [0, 1].
    init_scheme: initialiser name.
    dtype: the dtype of the activations and of h.
  """

  width: int = 64
  hidden_dim: int = 64
  carry: float = 0.0
  init_scheme: str = "xavier"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """BEGAN Fig. 1 (encoder): maps (B, H, W, C) to h (B, N_h)."""
    kernel_init, layer = _layer_factory(self.init_scheme, self.carry, self.dtype)
    scales = num_scales(x.shape[1])
    x = layer(self.width, name="stem")(x)
    for i in range(scales):
      features = (i + 1) * self.width
      x = layer(features, name=f"scale{i}_conv0")(x)
      x = layer(features, name=f"scale{i}_conv1")(x)
      if i < scales - 1:
        # Filters grow linearly with each down-sampling (Sec. 3.5).
        x = layer(features + self.width, strides=2, name=f"scale{i}_down")(x)
    return nn.Dense(self.hidden_dim, kernel_init=kernel_init, dtype=self.dtype, name="embed")(
      x.reshape(x.shape[0], -1)
    )


class AutoEncoder(nn.Module):
  """BEGAN's discriminator D: an auto-encoder scored by its per-sample reconstruction loss.

  Records D(v) with `sow("intermediates", "reconstruction")` and the embedding h with
  `sow("intermediates", "features")` (for summaries and feature matching).

  Attributes:
    width: n.
    hidden_dim: N_h.
    eta: η ∈ {1, 2} of L(v) = |v - D(v)|^η.
    skip: skip connections in the decoder.
    carry: vanishing-residual carry in [0, 1].
    init_scheme: initialiser name.
    dtype: the dtype of the activations; h, the reconstruction and L(v) are float32.
  """

  width: int = 64
  hidden_dim: int = 64
  eta: int = 1
  skip: bool = False
  carry: float = 0.0
  init_scheme: str = "xavier"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """BEGAN Sec. 3.1, Eq. 1: L(v) = |v - D(v)|^η, averaged over pixels and channels.

    Args:
      x: images v (B, H, W, C) in [-1, 1].
      train: unused (no batch statistics).

    Returns:
      L(v) per sample, (B,).
    """
    del train
    h = Encoder(
      width=self.width,
      hidden_dim=self.hidden_dim,
      carry=self.carry,
      init_scheme=self.init_scheme,
      dtype=self.dtype,
      name="encoder",
    )(x)
    # Sown for feature matching, a loss: float32.
    self.sow("intermediates", "features", h.astype(jnp.float32))
    reconstruction = Decoder(
      image_size=x.shape[1],
      channels=x.shape[-1],
      width=self.width,
      skip=self.skip,
      carry=self.carry,
      init_scheme=self.init_scheme,
      dtype=self.dtype,
      name="decoder",
    )(h)
    self.sow("intermediates", "reconstruction", reconstruction)
    # x and the reconstruction are float32, so is L(v): its per-pixel errors are small
    # differences of values near ±1, which bfloat16 would round to ~1e-2.
    error = jnp.abs(x.astype(jnp.float32) - reconstruction)
    if self.eta != 1:
      error = error**self.eta
    return jnp.mean(error.reshape(x.shape[0], -1), axis=1)
