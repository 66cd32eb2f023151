"""CycleGAN's networks (Zhu et al. 2017, Sec. 4 and Appendix 7.2): the ResNet generator of
Johnson et al. (2016) with instance normalisation and reflection padding, and the 70x70
PatchGAN discriminator (Isola et al. 2017), as in the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py: ResnetGenerator, ResnetBlock,
NLayerDiscriminator; no dropout, instance norm without affine parameters, biases on, weights
N(0, 0.02)).

Generator (c7s1-k: 7x7 conv stride 1 with k filters; dk: 3x3 conv stride 2; Rk: residual block
of two 3x3 convs; uk: 3x3 transposed conv stride 1/2):
  c7s1-w, d2w, d4w, R4w x n_blocks, u2w, uw, c7s1-C, tanh
(n_blocks = 6 at 128 px, 9 at 256 px). It is an `Encoder` (c7s1-w, the downsampling convs and
the first n_blocks // 2 residual blocks) followed by a `Decoder` (the other blocks, the
upsampling and the output conv), so the shared-encoder variant is the same architecture with
one encoder for both directions and one decoder per target domain.

Images are (B, H, W, C) in [-1, 1]; H and W must be multiples of 4.

Every module takes `dtype`, the dtype of its activations (train.compute_dtype); parameters are
float32, instance normalisation's statistics are computed in float32 (Flax promotes its
reductions), and the generators' images and the discriminators' scores, which enter the
losses (adversarial, cycle and identity), are float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

# The reference's init_weights(init_type="normal", init_gain=0.02); biases start at 0.
KERNEL_INIT = nn.initializers.normal(0.02)
# The two stride-2 layers of the generator (d2w, d4w and u2w, uw).
DOWNSAMPLINGS = 2


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Reflection padding of H and W by `pad` (PyTorch's ReflectionPad2d), (B, H, W, C)."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def instance_norm(x: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
  """Instance normalisation (Ulyanov et al. 2016) without affine parameters, as the
  reference's InstanceNorm2d(affine=False): each image's channels to zero mean, unit variance
  over H and W. The statistics are computed in float32; the result has `dtype`."""
  return nn.InstanceNorm(use_scale=False, use_bias=False, epsilon=1e-5, dtype=dtype)(x)


def conv(
  features: int, kernel: int, stride: int = 1, padding="VALID", name=None, dtype=jnp.float32
) -> nn.Conv:
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=padding,
    kernel_init=KERNEL_INIT,
    dtype=dtype,
    name=name,
  )


class ResidualBlock(nn.Module):
  """x + (reflect-pad, 3x3 conv, IN, ReLU, reflect-pad, 3x3 conv, IN)(x) (the reference's
  ResnetBlock; Johnson et al. 2016 without the final ReLU, as the reference)."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """(B, H, W, features) -> (B, H, W, features), in `dtype`."""
    norm = lambda h: instance_norm(h, self.dtype)
    h = nn.relu(norm(conv(self.features, 3, dtype=self.dtype)(reflect_pad(x, 1))))
    h = norm(conv(self.features, 3, dtype=self.dtype)(reflect_pad(h, 1)))
    return x.astype(self.dtype) + h


class Encoder(nn.Module):
  """c7s1-w, d2w, d4w, then `n_blocks` residual blocks R4w.

  Attributes:
    width: w, the first conv's filters (ngf, 64 in the paper).
    n_blocks: residual blocks here.
    dtype: the dtype of the activations and of the features returned (they go on to a
      decoder, not into a loss).
  """

  width: int
  n_blocks: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """(B, H, W, C) -> features (B, H/4, W/4, 4w). `train` is unused (no batch state)."""
    del train
    h = nn.relu(instance_norm(conv(self.width, 7, dtype=self.dtype)(reflect_pad(x, 3)), self.dtype))
    for i in range(DOWNSAMPLINGS):
      h = conv(self.width * 2 ** (i + 1), 3, 2, ((1, 1), (1, 1)), dtype=self.dtype)(h)
      h = nn.relu(instance_norm(h, self.dtype))
    for _ in range(self.n_blocks):
      h = ResidualBlock(self.width * 2**DOWNSAMPLINGS, self.dtype)(h)
    return h


class Decoder(nn.Module):
  """`n_blocks` residual blocks R4w, u2w, uw, c7s1-C, tanh.

  Attributes:
    width: w.
    n_blocks: residual blocks here.
    channels: C of the output images.
    dtype: the dtype of the activations; the images are float32.
  """

  width: int
  n_blocks: int
  channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, train: bool = True) -> jax.Array:
    """Features (B, H/4, W/4, 4w) -> images (B, H, W, C) in [-1, 1], float32."""
    del train
    for _ in range(self.n_blocks):
      h = ResidualBlock(self.width * 2**DOWNSAMPLINGS, self.dtype)(h)
    for i in reversed(range(DOWNSAMPLINGS)):
      # PyTorch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1): the dilated input
      # padded by k-1-p = 1 before and k-1-p+1 = 2 after, so the size exactly doubles.
      h = nn.ConvTranspose(
        self.width * 2**i,
        (3, 3),
        strides=(2, 2),
        padding=((1, 2), (1, 2)),
        kernel_init=KERNEL_INIT,
        dtype=self.dtype,
      )(h)
      h = nn.relu(instance_norm(h, self.dtype))
    out = conv(self.channels, 7, dtype=self.dtype)(reflect_pad(h, 3))
    # The images enter D and the cycle and identity losses: float32.
    return jnp.tanh(out.astype(jnp.float32))


def encoder_blocks(n_blocks: int) -> int:
  """Residual blocks in the encoder: the first half, n_blocks // 2 (the decoder gets the rest,
  so 9 blocks split 4 + 5)."""
  return n_blocks // 2


class ResnetGenerator(nn.Module):
  """The ResNet generator (Zhu et al. 2017, Appendix 7.2; the reference's ResnetGenerator):
  `Encoder` then `Decoder`, n_blocks residual blocks in all.

  Attributes:
    channels: C of the output images.
    width: w (ngf).
    n_blocks: residual blocks (6 at 128 px, 9 at 256 px).
    dtype: the dtype of the activations; the images are float32.
  """

  channels: int
  width: int = 64
  n_blocks: int = 9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """(B, H, W, C_in) in [-1, 1] -> (B, H, W, C) in [-1, 1], float32."""
    first = encoder_blocks(self.n_blocks)
    h = Encoder(self.width, first, self.dtype, name="encoder")(x, train)
    decoder = Decoder(self.width, self.n_blocks - first, self.channels, self.dtype, name="decoder")
    return decoder(h, train)


def patch_layers(n_layers: int) -> tuple[tuple[int, int], ...]:
  """(kernel, stride) of the PatchGAN's convs: n_layers 4x4 convs of stride 2, then two of
  stride 1 (the last one to the one-channel score map)."""
  return ((4, 2),) * n_layers + ((4, 1), (4, 1))


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
  """The receptive field of a stack of convs (kernel, stride): 1 + Σ_l (k_l − 1) Π_{j<l} s_j.

  Example: `receptive_field(patch_layers(3))` = 70, the 70x70 PatchGAN.
  """
  field, jump = 1, 1
  for kernel, stride in layers:
    field += (kernel - 1) * jump
    jump *= stride
  return field


def patch_output_size(size: int, n_layers: int) -> int:
  """The side of the PatchGAN's score map for an input of side `size` (4x4 convs, padding 1:
  out = floor((in + 2 − 4) / s) + 1)."""
  for kernel, stride in patch_layers(n_layers):
    size = (size + 2 - kernel) // stride + 1
  return size


class PatchDiscriminator(nn.Module):
  """The PatchGAN discriminator (Isola et al. 2017; Zhu et al. 2017, Appendix 7.2: C64-C128-
  C256-C512; the reference's NLayerDiscriminator): 4x4 convs with zero padding 1, strides
  2 (n_layers times), 1, 1; LeakyReLU 0.2; instance norm on all but the first and last.
  Each output scores one receptive field (`receptive_field(patch_layers(n_layers))`: 70 px
  for n_layers = 3; fewer layers suit small images, e.g. 34 px for n_layers = 2).

  Attributes:
    width: filters of the first conv (ndf, 64); doubled per layer up to 8·width.
    n_layers: the stride-2 convs (3 for the 70x70 PatchGAN).
    dtype: the dtype of the activations; the scores are float32.
  """

  width: int = 64
  n_layers: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """(B, H, W, C) -> raw scores (B, h, w), h = patch_output_size(H, n_layers), float32."""
    del train
    pad = ((1, 1), (1, 1))
    h = nn.leaky_relu(conv(self.width, 4, 2, pad, dtype=self.dtype)(x), 0.2)
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = conv(self.width * min(2**n, 8), 4, stride, pad, dtype=self.dtype)(h)
      h = nn.leaky_relu(instance_norm(h, self.dtype), 0.2)
    # The scores enter the losses: float32.
    return conv(1, 4, 1, pad, dtype=self.dtype)(h)[..., 0].astype(jnp.float32)
