"""The lens of Tempered GAN (Sajjadi et al. 2018, Sec. 2 and Fig. 3, right).

A residual fully convolutional network: a 3x3 convolution in, `blocks` residual blocks of two
3x3 stride-1 convolutions, a 3x3 convolution out, and a skip from the lens input to its
output, L(x) = x + f(x), so L can become the identity exactly (f = 0).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.models.conv import StridedConv
from gan_jax.models.dcgan import _norm
from gan_jax.models.initializers import INITIALIZERS


class Lens(nn.Module):
  """L: images (B, H, W, C) -> images (B, H, W, C).

  Attributes:
    width: channels inside the residual blocks.
    blocks: number of residual blocks (8 in the paper).
    norm: "none" (default), "batch" or "layer" inside the blocks.
    init_scheme: initialiser name (Xavier in the paper).
    zero_init_output: start the output convolution at zero, so L starts as the identity.
    bn_momentum: BatchNorm running-average momentum (norm="batch").
    dtype: the dtype of f's activations (train.compute_dtype); the parameters are float32,
      and L(x), which enters D and the reconstruction loss, is float32.
  """

  width: int = 32
  blocks: int = 8
  norm: str = "none"
  init_scheme: str = "xavier"
  zero_init_output: bool = False
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """Maps images x (B, H, W, C) to L(x) (B, H, W, C), float32."""
    kernel_init, scale_init = INITIALIZERS.get(self.init_scheme, "lens.init")
    # nn.Conv(padding="SAME")'s layer and parameters, with derivatives that stay on XLA:CPU's
    # fast kernels at any batch size (gan_jax/models/conv.py).
    conv = functools.partial(
      StridedConv, kernel_size=(3, 3), strides=(1, 1), kernel_init=kernel_init, dtype=self.dtype
    )
    norm = functools.partial(
      _norm, self.norm, train, self.bn_momentum, scale_init, dtype=self.dtype
    )
    h = nn.relu(conv(self.width, name="stem")(x))
    for i in range(self.blocks):
      r = nn.relu(norm(f"block{i}_norm0")(conv(self.width, name=f"block{i}_conv0")(h)))
      r = norm(f"block{i}_norm1")(conv(self.width, name=f"block{i}_conv1")(r))
      h = nn.relu(h + r)
    out_init = nn.initializers.zeros if self.zero_init_output else kernel_init
    out = StridedConv(
      x.shape[-1], (3, 3), (1, 1), kernel_init=out_init, dtype=self.dtype, name="out"
    )(h)
    # The skip adds f(x) to the float32 x, so L(x) = x exactly where f = 0 and the lensed
    # images, which enter D and the reconstruction loss, are float32.
    return x.astype(jnp.float32) + out.astype(jnp.float32)
