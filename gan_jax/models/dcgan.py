"""DCGAN generator and discriminator / critic.

Architecture of Tempered GAN (Sajjadi et al. 2018), Fig. 3, which follows the DCGAN guidelines
(Radford et al. 2016): 4x4 kernels, stride-2 transposed convolutions in G and stride-2
convolutions in D instead of pooling, BatchNorm, ReLU in G with a tanh output, LeakyReLU(0.2) in
D, a single dense layer at each end. The width is set by `width` (C in the paper): G goes
4C -> 2C -> C -> channels, D goes C -> 2C -> 4C -> 1.

The number of resolution steps follows from the image size: the spatial size is halved until it
is at most 7, so 28 -> 14 -> 7, 32 -> 16 -> 8 -> 4 and 64 -> ... -> 4.

The strided and transposed convolutions are `gan_jax.models.conv`'s, which equal Flax's
`nn.Conv` / `nn.ConvTranspose` (same parameters) and keep every derivative, including the
second derivatives of the gradient penalty and AdvAs, on XLA:CPU's fast kernels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core.registry import ConfigError, check_choice
from gan_jax.models.conv import StridedConv, StridedConvTranspose
from gan_jax.models.initializers import INITIALIZERS
from gan_jax.models.layers import MinibatchDiscrimination, VirtualBatchNorm, reference_input

# virtual_batch: Salimans et al. 2016's virtual batch normalisation (`gan_jax.models.layers`).
NORMS = ("batch", "layer", "none", "virtual_batch")


def num_resolution_steps(image_size: int) -> tuple[int, int]:
  """Returns (steps, base) with image_size == base * 2**steps and base <= 7."""
  size, steps = image_size, 0
  while size > 7:
    if size % 2:
      raise ConfigError(
        f"image size {image_size} cannot be halved down to at most 7 "
        "(config field data.image_size); use e.g. 28, 32 or 64"
      )
    size, steps = size // 2, steps + 1
  if steps < 1:
    raise ConfigError(f"image size {image_size} is too small (config field data.image_size)")
  return steps, size


def _norm(
  kind: str,
  train: bool,
  momentum: float,
  scale_init: Callable,
  name: str,
  reference_size: int = 0,
  dtype: jnp.dtype = jnp.float32,
):
  """The normalisation layer `kind`, returning `dtype`.

  Its mean and variance are computed in float32 whatever `dtype` is (Flax's normalisation
  layers promote their reductions to float32; `VirtualBatchNorm` casts), and BatchNorm's
  running averages are float32 variables: a variance from bfloat16 sums of squares would lose
  most of its digits.
  """
  if kind == "virtual_batch":
    return VirtualBatchNorm(
      reference_size, epsilon=1e-5, scale_init=scale_init, dtype=dtype, name=name
    )
  if kind == "batch":
    return nn.BatchNorm(
      use_running_average=not train,
      momentum=momentum,
      epsilon=1e-5,
      scale_init=scale_init,
      dtype=dtype,
      name=name,
    )
  if kind == "layer":
    return nn.LayerNorm(epsilon=1e-5, dtype=dtype, name=name)
  return lambda h: h


def _norm_of(module: nn.Module, train: bool, scale_init):
  """`_norm` with the settings of `module` (Generator or Discriminator): the
  normalisation layer both networks build after each convolution."""
  return functools.partial(
    _norm,
    module.norm,
    train,
    module.bn_momentum,
    scale_init,
    reference_size=module.vbn_reference_size,
    dtype=module.dtype,
  )


class Generator(nn.Module):
  """DCGAN generator G: z -> image.

  Attributes:
    image_size: output height and width (28, 32, 64, ...).
    channels: output channels (1 or 3).
    width: the paper's C; the first feature map has C * 2**(steps - 1) channels.
    norm: "batch" (DCGAN), "layer", "none" or "virtual_batch" (Salimans et al. 2016,
      Sec. 3.5: the reference batch is a fixed noise batch, the collection `vbn_reference`).
    init_scheme: initialiser name, see `INITIALIZERS`.
    bn_momentum: BatchNorm running-average momentum.
    vbn_reference_size: R, the reference batch's size (norm="virtual_batch" only).
    dtype: the dtype of the activations (train.compute_dtype); the parameters are float32
      and the images are returned in float32.
  """

  image_size: int = 32
  channels: int = 1
  width: int = 64
  norm: str = "batch"
  init_scheme: str = "xavier"
  bn_momentum: float = 0.9
  vbn_reference_size: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    """Maps noise `z` of shape (B, Z) to images (B, H, W, channels) in [-1, 1]."""
    check_choice(self.norm, NORMS, "model.generator_norm")
    kernel_init, scale_init = INITIALIZERS.get(self.init_scheme, "model.init")
    steps, base = num_resolution_steps(self.image_size)
    features = self.width * 2 ** (steps - 1)
    dense = functools.partial(nn.Dense, kernel_init=kernel_init, dtype=self.dtype)
    convt = functools.partial(
      StridedConvTranspose,
      kernel_size=(4, 4),
      strides=(2, 2),
      kernel_init=kernel_init,
      dtype=self.dtype,
    )
    norm = _norm_of(self, train, scale_init)
    batch = z.shape[0]
    reference = self.norm == "virtual_batch"
    if reference:
      # VBN: the fixed reference noise is forwarded with z (in front of it) at every pass, so
      # its statistics are those of the current parameters; its rows are dropped at the end.
      z = jnp.concatenate([reference_input(self, z, self.vbn_reference_size), z], axis=0)

    h = dense(base * base * features, use_bias=self.norm == "none", name="project")(z)
    h = h.reshape(z.shape[0], base, base, features)
    h = nn.relu(norm("project_norm")(h))
    for i in range(steps - 1):
      features //= 2
      h = convt(features, use_bias=self.norm == "none", name=f"up{i}")(h)
      h = nn.relu(norm(f"up{i}_norm")(h))
    h = convt(self.channels, name="to_image")(h)
    if reference:
      h = h[-batch:]
    # The images enter losses (the lens' reconstruction, the gradient penalty's interpolation)
    # and the sample grids: float32.
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """DCGAN discriminator D (norm="batch") or WGAN-GP critic (norm="none" or "layer").

  Returns one raw score per image: a logit for the minimax/non-saturating/LSGAN objectives, an
  unbounded critic value for WGAN. For feature matching the last hidden features (flattened,
  (B, F)) are sown as `self.sow("intermediates", "features", ...)` and each block's output
  (B, h, w, c) as "block0", "block1", ...; with minibatch discrimination o(x) (B, kernels) is
  sown as "minibatch_features".

  Attributes:
    width: the paper's C; layers have C, 2C, 4C, ... channels.
    norm: "batch" (DCGAN; not applied to the first layer), "layer", "none" (WGAN-GP: the
      gradient penalty is per sample, which batch statistics would couple) or "virtual_batch"
      (Salimans et al. 2016, Sec. 3.5; the reference batch is real data, the collection
      `vbn_reference`).
    init_scheme: initialiser name, see `INITIALIZERS`.
    bn_momentum: BatchNorm running-average momentum.
    minibatch_kernels: B of minibatch discrimination (Salimans et al. 2016, Sec. 3.2) before
      the score layer; 0 = none.
    minibatch_kernel_dim: C of minibatch discrimination.
    minibatch_exclude_self: leave out j = i from minibatch discrimination's sum.
    vbn_reference_size: R, the reference batch's size (norm="virtual_batch" only).
    dtype: the dtype of the activations (train.compute_dtype); the parameters are float32,
      and the scores and sown intermediates, which enter losses, are returned in float32.
  """

  width: int = 64
  norm: str = "batch"
  init_scheme: str = "xavier"
  bn_momentum: float = 0.9
  minibatch_kernels: int = 0
  minibatch_kernel_dim: int = 5
  minibatch_exclude_self: bool = True
  vbn_reference_size: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """Maps images (B, H, W, C) in [-1, 1] to scores (B,)."""
    check_choice(self.norm, NORMS, "model.discriminator_norm")
    kernel_init, scale_init = INITIALIZERS.get(self.init_scheme, "model.init")
    steps, _ = num_resolution_steps(x.shape[1])
    conv = functools.partial(
      StridedConv, kernel_size=(4, 4), strides=(2, 2), kernel_init=kernel_init, dtype=self.dtype
    )
    norm = _norm_of(self, train, scale_init)
    batch = x.shape[0]
    reference = self.norm == "virtual_batch"
    if reference:
      # VBN: the fixed reference images go through D with x (in front of it) at every pass.
      x = jnp.concatenate([reference_input(self, x, self.vbn_reference_size), x], axis=0)

    h = x.astype(self.dtype)
    features = self.width
    for i in range(steps):
      use_norm = i > 0  # DCGAN: no normalisation on the discriminator's input layer.
      h = conv(features, use_bias=not use_norm or self.norm == "none", name=f"down{i}")(h)
      if use_norm:
        h = norm(f"down{i}_norm")(h)
      h = nn.leaky_relu(h, 0.2)
      # Sown intermediates may enter a loss (feature matching on any layer): float32.
      self.sow("intermediates", f"block{i}", (h[-batch:] if reference else h).astype(jnp.float32))
      features *= 2
    if reference:
      h = h[-batch:]
    h = h.reshape(h.shape[0], -1)
    self.sow("intermediates", "features", h.astype(jnp.float32))
    if self.minibatch_kernels:
      num_features = h.shape[1]
      h = MinibatchDiscrimination(
        self.minibatch_kernels,
        self.minibatch_kernel_dim,
        exclude_self=self.minibatch_exclude_self,
        dtype=self.dtype,
        name="minibatch",
      )(h)
      self.sow("intermediates", "minibatch_features", h[:, num_features:].astype(jnp.float32))
    out = nn.Dense(1, kernel_init=kernel_init, dtype=self.dtype, name="score")(h)
    # The scores enter the losses: float32.
    return out[:, 0].astype(jnp.float32)
