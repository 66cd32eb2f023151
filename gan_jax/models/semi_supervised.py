"""Networks of the semi-supervised K+1 GAN (Salimans et al. 2016, Sec. 5 and its released code).

  MLPClassifier, MLPGenerator    permutation-invariant MNIST (Sec. 5.1): D is a 784-1000-500-
                                 250-250-250-K MLP with weight normalisation and Gaussian noise
                                 on its input and hidden layers; G is z (100) - 500 - 500 - 784.
  ConvClassifier, ConvGenerator  CIFAR-10 and SVHN (Sec. 5.2, 5.3): D is a 9-layer weight-
                                 normalised conv net with dropout and global average pooling;
                                 G is a dense projection and three stride-2 transposed convs.

D returns K logits (B, K); the fake class's logit is fixed at 0 by the loss
(`gan_jax.losses.semi_supervised`), not by the network. D's last hidden layer is sown as
"features" (feature matching, Sec. 3.1). Images are (B, H, W, C) in [-1, 1]; the MNIST nets
work on [0, 1] pixels inside, as the released code does (so the noise σ = 0.3 on the input
means what it means there).

Stochastic layers (Gaussian noise, dropout) draw from the PRNG collection "noise" in training
mode and are the identity in inference mode (the released code's `deterministic=True`, used
for the test error).

Every network takes `dtype`, the dtype of its activations (train.compute_dtype); parameters
and batch-norm statistics are float32, weight normalisation's 1 / ‖v‖ is computed in float32
before the layer casts it, and the logits, the sown features and G's images, which enter
losses, are float32. The Gaussian noise is drawn in float32 whatever the activations' dtype, so
a bfloat16 run sees the same draws as a float32 one.

Weight normalisation (Salimans & Kingma 2016, Eq. 2): w = g · v / ‖v‖ per output unit. Its
data-dependent initialisation (ibid., Sec. 2.2) runs when the network is initialised with
`data_init=True` on a real batch: each layer, in order, sets g ← s0 / σ[t] and
b ← −μ[t] · s0 / σ[t], with t = x · v / ‖v‖ the pre-activation on the init batch and s0 the
layer's init scale (1, or 0.1 for the conv nets' output layers), so each pre-activation has
zero mean and standard deviation s0 on that batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core import random as random_lib

_CONV_DIMS = ("NHWC", "HWIO", "NHWC")


def gaussian_noise(module: nn.Module, x: jax.Array, sigma: float, train: bool) -> jax.Array:
  """x + N(0, σ²) in training mode (the released code's GaussianNoiseLayer), else x; x's
  dtype. The noise is drawn and added in float32 (a bfloat16 draw would be a different
  stream and coarser)."""
  if not train or sigma == 0:
    return x
  noise = jax.random.normal(random_lib.unrolled(module.make_rng("noise")), x.shape, jnp.float32)
  return (x + sigma * noise).astype(x.dtype)


def dropout(module: nn.Module, x: jax.Array, rate: float, train: bool) -> jax.Array:
  """Inverted dropout (Lasagne's DropoutLayer, rescale=True) in training mode, else x."""
  if not train or rate == 0:
    return x
  keep = jax.random.bernoulli(random_lib.unrolled(module.make_rng("noise")), 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


class WeightNorm(nn.Module):
  """A dense, conv or transposed-conv layer with weight normalisation (Salimans & Kingma 2016,
  Eq. 2): y = g · (x ∗ v / ‖v‖) + b, the norm over all of v but the output axis.

  Attributes:
    features: output units / channels.
    kind: "dense", "conv" or "conv_transpose".
    kernel_size: spatial kernel size (convs).
    strides: spatial strides (convs).
    padding: lax padding: "SAME", "VALID" or explicit ((lo, hi), (lo, hi)) pairs.
    v_init: initialiser of the direction v.
    train_scale: whether g is trained (the released code trains it only in output layers).
    init_scale: s0, the standard deviation the data-dependent init gives each pre-activation.
    data_dependent: whether `data_init=True` sets g and b from the batch (False: g = 1,
      b = 0, as the released code's `l2normalize` of the MNIST generator's output layer).
    eps: added to ‖v‖² (1e-6 in the released code's conv layers, 0 in its MNIST D).
    use_bias: add b.
    dtype: the dtype of the computation and output (None: x's and v's promoted); v, g and b
      are float32 parameters, 1 / ‖v‖ is computed in float32 and cast.
  """

  features: int
  kind: str = "dense"
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: str | Sequence[tuple[int, int]] = "SAME"
  v_init: Callable = nn.initializers.normal(0.05)
  train_scale: bool = False
  init_scale: float = 1.0
  data_dependent: bool = True
  eps: float = 0.0
  use_bias: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, data_init: bool = False) -> jax.Array:
    """x (B, F) or (B, H, W, C) -> (B, features) or (B, H', W', features)."""
    if self.kind == "dense":
      shape = (x.shape[-1], self.features)
    else:
      shape = (*self.kernel_size, x.shape[-1], self.features)
    v = self.param("v", self.v_init, shape)
    axes = tuple(range(v.ndim - 1))
    # x ∗ (v / ‖v‖) = (x ∗ v) / ‖v‖ per output unit: the product runs on v itself and its
    # output is scaled. The same function as scaling v, cheaper to differentiate: no v-sized
    # array v / ‖v‖ in the forward pass, and one v-sized reduction less in the backward pass
    # (the :mnist iteration 62.7 -> 57.4 ms on a CPU core, docs/semi_supervised.md).
    inv_norm = jax.lax.rsqrt(self.eps + jnp.sum(jnp.square(v), axis=axes))
    x, v_c = nn.dtypes.promote_dtype(x, v, dtype=self.dtype)
    if self.kind == "dense":
      t = x @ v_c
    elif self.kind == "conv":
      t = jax.lax.conv_general_dilated(
        x, v_c, self.strides, self.padding, dimension_numbers=_CONV_DIMS
      )
    else:
      t = jax.lax.conv_transpose(x, v_c, self.strides, self.padding, dimension_numbers=_CONV_DIMS)
    t = t * inv_norm.astype(t.dtype)

    moments = None
    if data_init and self.data_dependent and self.is_initializing():
      # Salimans & Kingma 2016, Sec. 2.2: normalise the pre-activation on the init batch.
      # In float32: g and b are float32 parameters and σ comes from a sum of squares.
      t32 = t.astype(jnp.float32)
      reduce = tuple(range(t.ndim - 1))
      mean = jnp.mean(t32, axis=reduce)
      std = jnp.sqrt(jnp.mean(jnp.square(t32 - mean), axis=reduce) + 1e-12)
      moments = (mean, std)

    def g_init(key, shape):
      del key
      return jnp.ones(shape) if moments is None else self.init_scale / moments[1]

    def b_init(key, shape):
      del key
      return jnp.zeros(shape) if moments is None else -moments[0] * self.init_scale / moments[1]

    g = self.param("g", g_init, (self.features,))
    if not self.train_scale:
      # A fixed scale (the released code's `train_g=False` / `train_scale=False`): set by the
      # data-dependent init, never updated.
      g = jax.lax.stop_gradient(g)
    y = t * g.astype(t.dtype)
    if self.use_bias:
      y = y + self.param("b", b_init, (self.features,)).astype(t.dtype)
    return y


class MLPClassifier(nn.Module):
  """D of permutation-invariant MNIST (Sec. 5.1; released train_mnist_feature_matching.py):
  input noise σ0, weight-normalised dense layers with ReLU each followed by noise σ, and K
  weight-normalised logits.

  Attributes:
    hidden: hidden widths (1000, 500, 250, 250, 250).
    num_classes: K.
    input_noise: σ of the Gaussian noise on the [0, 1] pixels (0.3).
    hidden_noise: σ of the noise after each hidden layer (0.5).
    dtype: the dtype of the activations; the logits and features are float32.
  """

  hidden: tuple[int, ...] = (1000, 500, 250, 250, 250)
  num_classes: int = 10
  input_noise: float = 0.3
  hidden_noise: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, data_init: bool = False) -> jax.Array:
    """Images (B, H, W, C) in [-1, 1] -> logits (B, K); sows "features" (B, hidden[-1])."""
    # The released code's pixels are in [0, 1]; the noise scale refers to them.
    h = (x.reshape(x.shape[0], -1).astype(jnp.float32) + 1.0) / 2.0
    h = gaussian_noise(self, h, self.input_noise, train)
    dense = dict(kind="dense", v_init=nn.initializers.normal(0.1), dtype=self.dtype)
    for i, width in enumerate(self.hidden):
      h = nn.relu(WeightNorm(width, **dense, name=f"dense{i}")(h, data_init))
      if i == len(self.hidden) - 1:
        # The released code matches features of its layers[-3]: the last hidden layer's
        # output before its noise. Feature matching is a loss: float32.
        self.sow("intermediates", "features", h.astype(jnp.float32))
      h = gaussian_noise(self, h, self.hidden_noise, train)
    logits = WeightNorm(self.num_classes, **dense, train_scale=True, name="logits")(h, data_init)
    return logits.astype(jnp.float32)


class MLPGenerator(nn.Module):
  """G of permutation-invariant MNIST (released train_mnist_feature_matching.py): dense layers
  (Glorot-uniform, no bias) with batch norm (no scale) and softplus, then a weight-normalised
  dense layer (trained g, no data-dependent init) with a sigmoid.

  Attributes:
    image_shape: (H, W, C) of the output.
    hidden: hidden widths (500, 500).
    bn_momentum: running-average momentum of batch norm (0.9, the released code's).
    dtype: the dtype of the activations; the images are float32.
  """

  image_shape: tuple[int, int, int] = (28, 28, 1)
  hidden: tuple[int, ...] = (500, 500)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True, data_init: bool = False) -> jax.Array:
    """Noise z (B, Z) -> images (B, H, W, C) in [-1, 1]."""
    h = z.astype(jnp.float32)
    for i, width in enumerate(self.hidden):
      h = nn.Dense(
        width,
        use_bias=False,
        kernel_init=nn.initializers.xavier_uniform(),
        dtype=self.dtype,
        name=f"dense{i}",
      )(h)
      # Flax computes the batch statistics in float32 and keeps float32 running averages.
      h = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=1e-6,
        use_scale=False,
        dtype=self.dtype,
        name=f"bn{i}",
      )(h)
      h = nn.softplus(h)
    out = WeightNorm(
      math.prod(self.image_shape),
      kind="dense",
      v_init=nn.initializers.xavier_uniform(),
      train_scale=True,
      data_dependent=False,
      eps=1e-6,
      dtype=self.dtype,
      name="to_image",
    )(h, data_init)
    # sigmoid gives the released code's [0, 1] pixels; the library's images are in [-1, 1],
    # float32 (they enter D and the feature-matching loss).
    out = out.astype(jnp.float32)
    return (2.0 * nn.sigmoid(out) - 1.0).reshape((z.shape[0], *self.image_shape))


def _conv_padding(pad: int) -> tuple[tuple[int, int], tuple[int, int]]:
  return ((pad, pad), (pad, pad))


class ConvClassifier(nn.Module):
  """D of CIFAR-10 / SVHN (Sec. 5.2-5.3; released train_cifar/svhn_feature_matching.py):
  dropout 0.2 on the input; per block three weight-normalised 3x3 convs (the third with stride
  2) with leaky ReLU (0.2) and dropout 0.5; a valid 3x3 conv and two 1x1 convs (NIN); global
  average pooling; K weight-normalised logits (trained g, init scale 0.1).

  Attributes:
    widths: channels per block ((96, 192) CIFAR-10, (64, 128) SVHN).
    num_classes: K.
    input_dropout: dropout rate on the input (0.2).
    hidden_dropout: dropout rate after each block (0.5).
    dtype: the dtype of the activations; the logits and features are float32.
  """

  widths: tuple[int, ...] = (96, 192)
  num_classes: int = 10
  input_dropout: float = 0.2
  hidden_dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True, data_init: bool = False) -> jax.Array:
    """Images (B, H, W, C) in [-1, 1] -> logits (B, K); sows "features" (B, widths[-1])."""
    conv = dict(kind="conv", v_init=nn.initializers.normal(0.05), eps=1e-6, dtype=self.dtype)
    h = dropout(self, x.astype(self.dtype), self.input_dropout, train)
    for block, width in enumerate(self.widths):
      for j in range(3):
        # Lasagne's pad=1 on both sides (lax's "SAME" pads a stride-2 conv only at the end).
        h = WeightNorm(
          width,
          **conv,
          strides=(2, 2) if j == 2 else (1, 1),
          padding=_conv_padding(1),
          name=f"block{block}_conv{j}",
        )(h, data_init)
        h = nn.leaky_relu(h, 0.2)
      h = dropout(self, h, self.hidden_dropout, train)
    width = self.widths[-1]
    h = nn.leaky_relu(
      WeightNorm(width, **conv, padding="VALID", name="conv_valid")(h, data_init), 0.2
    )
    for j in range(2):
      h = WeightNorm(width, **conv, kernel_size=(1, 1), name=f"nin{j}")(h, data_init)
      h = nn.leaky_relu(h, 0.2)
    h = jnp.mean(h, axis=(1, 2))
    # Feature matching is a loss: float32.
    self.sow("intermediates", "features", h.astype(jnp.float32))
    logits = WeightNorm(
      self.num_classes,
      kind="dense",
      v_init=nn.initializers.normal(0.05),
      train_scale=True,
      init_scale=0.1,
      eps=1e-6,
      dtype=self.dtype,
      name="logits",
    )(h, data_init)
    return logits.astype(jnp.float32)


class ConvGenerator(nn.Module):
  """G of CIFAR-10 / SVHN (released train_cifar/svhn_feature_matching.py): a dense projection
  to 4x4xW0 and 5x5 stride-2 transposed convs, each with batch norm (no scale) and ReLU, then
  a weight-normalised 5x5 stride-2 transposed conv (trained g, init scale 0.1) and tanh.

  Attributes:
    image_shape: (H, W, C); H = W = 4 · 2**len(widths).
    widths: channels of the projection and of each hidden transposed conv (512, 256, 128).
    bn_momentum: running-average momentum of batch norm (0.9).
    dtype: the dtype of the activations; the images are float32.
  """

  image_shape: tuple[int, int, int] = (32, 32, 3)
  widths: tuple[int, ...] = (512, 256, 128)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True, data_init: bool = False) -> jax.Array:
    """Noise z (B, Z) -> images (B, H, W, C) in [-1, 1]."""
    height, _, channels = self.image_shape
    base = height // 2 ** len(self.widths)
    init = nn.initializers.normal(0.05)

    def bn(name):
      return nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=1e-6,
        use_scale=False,
        dtype=self.dtype,
        name=name,
      )

    h = nn.Dense(
      base * base * self.widths[0],
      use_bias=False,
      kernel_init=init,
      dtype=self.dtype,
      name="project",
    )(z.astype(jnp.float32))
    h = nn.relu(bn("project_bn")(h)).reshape(z.shape[0], base, base, self.widths[0])
    # Theano's gradient of a 5x5 stride-2 conv with pad 2 ("half") from 2n to n pixels, as
    # a transposed conv: pad the dilated input by (k - 1 - 2, k - 1 - 2 + 1) = (2, 3).
    up = dict(kernel_size=(5, 5), strides=(2, 2), padding=_up_padding())
    for i, w in enumerate(self.widths[1:]):
      h = nn.ConvTranspose(
        w, **up, use_bias=False, kernel_init=init, dtype=self.dtype, name=f"up{i}"
      )(h)
      h = nn.relu(bn(f"up{i}_bn")(h))
    h = WeightNorm(
      channels,
      kind="conv_transpose",
      **up,
      v_init=init,
      train_scale=True,
      init_scale=0.1,
      eps=1e-6,
      dtype=self.dtype,
      name="to_image",
    )(h, data_init)
    # The images enter D and the feature-matching loss: float32.
    return jnp.tanh(h.astype(jnp.float32))


def _up_padding() -> tuple[tuple[int, int], tuple[int, int]]:
  return ((2, 3), (2, 3))
