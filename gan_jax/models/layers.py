"""Layers of Improved Techniques for Training GANs (Salimans et al. 2016).

  MinibatchDiscrimination  Sec. 3.2: side information o(x_i) on how close x_i is to the other
                           examples of its minibatch, concatenated to D's last features.
  VirtualBatchNorm         Sec. 3.5: batch normalisation of each example with the statistics
                           of a fixed reference batch plus the example itself.

Both run inside the compiled, data-parallel step (`gan_jax.core.parallel`): the step is jit
over global arrays, so the minibatch of minibatch discrimination is the *global* batch (XLA
gathers the projections M of every device's examples for the sum over j), and one device
gives the same values as several at the same global batch size.

Both take a `dtype` for their output (the network's activation dtype, train.compute_dtype);
their parameters are float32, and the parts that are sums of many close values (the L1
distances of minibatch discrimination, the moments of virtual batch normalisation) are computed
in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

# The model_state collection holding a network's VBN reference input (a reference batch of
# images for D, of noise for G); it is checkpointed with the rest of the TrainState.
VBN_REFERENCE = "vbn_reference"


def minibatch_features(m: jax.Array, *, exclude_self: bool = True) -> jax.Array:
  """o(x_i)_b = Σ_j exp(−‖M_{i,b} − M_{j,b}‖_L1) (Salimans et al. 2016, Sec. 3.2).

  Args:
    m: M = f(x)·T, (N, B, C): B kernels of dimension C per example.
    exclude_self: leave out j = i, whose term is exp(0) = 1 for every example (the released
      code adds 1e6 to the diagonal distance for the same effect); the paper's sum includes it.

  Returns:
    o (N, B). The sum runs over every example of `m`: under jit with a sharded batch this is
    the global batch, not a device's share.
  """
  l1 = jnp.sum(jnp.abs(m[:, None, :, :] - m[None, :, :, :]), axis=-1)  # (N, N, B)
  c = jnp.exp(-l1)
  if exclude_self:
    c = c * (1.0 - jnp.eye(m.shape[0], dtype=c.dtype))[:, :, None]
  return jnp.sum(c, axis=1)


class MinibatchDiscrimination(nn.Module):
  """Minibatch discrimination (Salimans et al. 2016, Sec. 3.2).

  M_i = f(x_i)·T ∈ R^{B×C} with a learned T ∈ R^{A×B×C}; returns [f(x_i), o(x_i)] with o from
  `minibatch_features`, to be fed to D's last layer. Call it once per minibatch: D's passes on
  the real and on the generated batch are separate, so each is compared with itself only.

  Attributes:
    num_kernels: B (100 in the released code).
    kernel_dim: C (5 in the released code).
    exclude_self: leave out j = i from the sum (as the released code does).
    init_stddev: standard deviation of T's normal initialisation (the released code's 0.05).
    dtype: the dtype of the projection M and of the output (None: f's and T's promoted).
  """

  num_kernels: int = 100
  kernel_dim: int = 5
  exclude_self: bool = True
  init_stddev: float = 0.05
  dtype: Any = None

  @nn.compact
  def __call__(self, f: jax.Array) -> jax.Array:
    """Maps features f (N, A) to (N, A + B)."""
    t = self.param(
      "T",
      nn.initializers.normal(self.init_stddev),
      (f.shape[-1], self.num_kernels, self.kernel_dim),
    )
    f, t = nn.dtypes.promote_dtype(f, t, dtype=self.dtype)
    m = jnp.einsum("na,abc->nbc", f, t)
    # o is made of differences of close values (it detects near-identical examples) and sums
    # N exponentials of them: float32 whatever the activations' dtype.
    o = minibatch_features(m.astype(jnp.float32), exclude_self=self.exclude_self)
    return jnp.concatenate([f, o.astype(f.dtype)], axis=-1)


def virtual_batch_moments(h: jax.Array, reference_size: int) -> tuple[jax.Array, jax.Array]:
  """Per-row mean and variance of virtual batch normalisation (Salimans et al. 2016, Sec. 3.5).

  The first `reference_size` = R rows of `h` are the reference batch, the others the examples.
  Statistics are over the batch and spatial axes, per channel, as in batch normalisation. An
  example x is normalised with the statistics of the R reference examples plus x itself (x
  weighted 1/(R+1), the reference R/(R+1)); a reference row with the reference's own.

  Args:
    h: (R + N, ..., channels).
    reference_size: R.

  Returns:
    (mean, variance), each (R + N, 1, ..., 1, channels), broadcastable against h.
  """
  spatial = tuple(range(1, h.ndim - 1))
  # Per-row first and second moments over the spatial positions, (R + N, 1, ..., channels).
  row_mean = jnp.mean(h, axis=spatial, keepdims=True)
  row_sq = jnp.mean(jnp.square(h), axis=spatial, keepdims=True)
  ref_mean = jnp.mean(row_mean[:reference_size], axis=0, keepdims=True)
  ref_sq = jnp.mean(row_sq[:reference_size], axis=0, keepdims=True)
  w = 1.0 / (reference_size + 1.0)
  is_ref = (jnp.arange(h.shape[0]) < reference_size).reshape((-1,) + (1,) * (h.ndim - 1))
  mean = jnp.where(is_ref, ref_mean, (1.0 - w) * ref_mean + w * row_mean)
  sq = jnp.where(is_ref, ref_sq, (1.0 - w) * ref_sq + w * row_sq)
  # E[h²] − E[h]² can round below 0 where the variance is ~0.
  return mean, jnp.maximum(sq - jnp.square(mean), 0.0)


class VirtualBatchNorm(nn.Module):
  """Virtual batch normalisation (Salimans et al. 2016, Sec. 3.5).

  Its input holds the reference batch's activations in its first `reference_size` rows and
  the examples' after them (the network concatenates its reference input, a fixed batch
  chosen at initialisation, in front of its input and drops those rows at the end), so the
  reference statistics are those of the current parameters, recomputed every pass and
  differentiated through. It keeps no running averages: training and inference normalise the
  same way, and an example's output does not depend on the other examples of its batch.

  Attributes:
    reference_size: R, the rows of the reference batch at the front of the input.
    epsilon: added to the variance.
    scale_init: initialiser of the scale γ (the bias β starts at 0).
    dtype: the dtype of the output (None: the input's). The moments and the normalisation
      are computed in float32 either way.
  """

  reference_size: int
  epsilon: float = 1e-5
  scale_init: Callable = nn.initializers.ones
  dtype: Any = None

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    """Normalises h (R + N, ..., channels); returns the same shape."""
    channels = h.shape[-1]
    scale = self.param("scale", self.scale_init, (channels,))
    bias = self.param("bias", nn.initializers.zeros, (channels,))
    # The moments are means of squares over (R + 1)·H·W values, in float32; so is the
    # normalisation, h − mean being promoted to the moments' float32.
    mean, var = virtual_batch_moments(h.astype(jnp.float32), self.reference_size)
    y = (h - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (y * scale + bias).astype(h.dtype if self.dtype is None else self.dtype)


def reference_input(module: nn.Module, x: jax.Array, reference_size: int) -> jax.Array:
  """The network's VBN reference input (R, ...) of x's per-example shape and dtype.

  It lives in the collection `VBN_REFERENCE` (model_state), zeros at `init`; the game fills it
  once (`gan_jax.games.unconditional.UnconditionalGame.init_variables`).
  """
  shape = (reference_size,) + x.shape[1:]
  return module.variable(VBN_REFERENCE, "input", jnp.zeros, shape, x.dtype).value
