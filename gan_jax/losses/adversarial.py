"""Adversarial losses as pure functions: minimax and non-saturating GAN, LSGAN, WGAN, WGAN-GP.

Every loss takes keyword-only arguments and returns `(scalar, metrics)`. Arguments without a
default are named quantities of the game (`gan_jax.games`): `d_real` and `d_fake` are D's raw
outputs (logits or critic values) of shape (B,) on real (as D sees them) and generated images,
`x_real_view` and `x_fake` the images (B, H, W, C) themselves, `critic` D as a function of
images, `key` a PRNG key. Arguments with a default are hyperparameters, bound from the config.

Conventions (Tempered GAN, Sajjadi et al. 2018, Sec. A.1): D minimises L_D, G minimises L_G,
d is the pre-sigmoid output, and softplus(-d) = -log sigmoid(d).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


def minimax_discriminator_loss(
  *, d_real: jax.Array, d_fake: jax.Array, real_label: float = 1.0
) -> tuple[jax.Array, Metrics]:
  """Binary cross-entropy of D (Goodfellow et al. 2014, Eq. 1).

  L_D = -E log D(x) - E log(1 - D(G(z))) = softplus(-d(x)) + softplus(d(G(z))).
  With `real_label` = α < 1 this is one-sided label smoothing (Salimans et al. 2016, Sec. 3.4):
  real targets α, fake targets stay 0.
  """
  real = real_label * jax.nn.softplus(-d_real) + (1.0 - real_label) * jax.nn.softplus(d_real)
  loss = jnp.mean(real) + jnp.mean(jax.nn.softplus(d_fake))
  return loss, {
    "d_real": jnp.mean(d_real),
    "d_fake": jnp.mean(d_fake),
    "p_real": jnp.mean(jax.nn.sigmoid(d_real)),
    "p_fake": jnp.mean(jax.nn.sigmoid(d_fake)),
  }


def minimax_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """Saturating minimax generator loss: L_G = E log(1 - D(G(z))) = -softplus(d(G(z)))."""
  return -jnp.mean(jax.nn.softplus(d_fake)), {}


def non_saturating_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """Non-saturating generator loss (Goodfellow et al. 2014, Sec. 3): -log D(G(z)) = softplus(-d)."""
  return jnp.mean(jax.nn.softplus(-d_fake)), {}


def lsgan_discriminator_loss(
  *, d_real: jax.Array, d_fake: jax.Array, real_target: float = 1.0, fake_target: float = 0.0
) -> tuple[jax.Array, Metrics]:
  """LSGAN discriminator loss (Mao et al. 2017, Eq. 2, a=0, b=1): (d(x) - b)² + (d(G(z)) - a)².

  With `real_target` = α < 1 this is one-sided label smoothing (Salimans et al. 2016,
  Sec. 3.4): the real target b becomes α, the fake target a stays (config:
  objective.real_label).

  Scale: without Eq. 2's ½ factor, as Tempered GAN writes it (Sec. A.1); this doubles the
  gradient of the paper's form, which Adam's normalisation makes immaterial.
  """
  loss = jnp.mean((d_real - real_target) ** 2) + jnp.mean((d_fake - fake_target) ** 2)
  return loss, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}


def lsgan_generator_loss(*, d_fake: jax.Array, target: float = 1.0) -> tuple[jax.Array, Metrics]:
  """LSGAN generator loss (Mao et al. 2017, Eq. 2, c=1): (d(G(z)) - c)².

  Scale: without Eq. 2's ½ factor (as Tempered GAN Sec. A.1), like the D loss: L_G is twice
  the paper's ½E(d(G(z)) - c)².
  """
  return jnp.mean((d_fake - target) ** 2), {}


def wasserstein_critic_loss(*, d_real: jax.Array, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """WGAN critic loss (Arjovsky et al. 2017, Alg. 1): E d(G(z)) - E d(x).

  The metric `wasserstein` is the critic's estimate E d(x) - E d(G(z)) of the distance.
  """
  estimate = jnp.mean(d_real) - jnp.mean(d_fake)
  return -estimate, {
    "d_real": jnp.mean(d_real),
    "d_fake": jnp.mean(d_fake),
    "wasserstein": estimate,
  }


def wasserstein_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """WGAN generator loss: -E d(G(z))."""
  return -jnp.mean(d_fake), {}


def gradient_penalty(
  *,
  critic: Callable[[jax.Array], jax.Array],
  x_real_view: jax.Array,
  x_fake: jax.Array,
  key: jax.Array,
  target: float = 1.0,
) -> tuple[jax.Array, Metrics]:
  """WGAN-GP gradient penalty (Gulrajani et al. 2017, Eq. 3, Alg. 1), without its weight λ.

  E_x̂ (‖∇_x̂ d(x̂)‖₂ - 1)², x̂ = εx + (1 - ε)G(z), ε ~ U[0, 1] drawn per sample.

  Args:
    critic: images (B, H, W, C) -> scores (B,). The per-sample gradient is taken as the
      gradient of the sum of scores, which is exact for a critic without batch coupling.
    x_real_view: real images as D sees them (B, H, W, C).
    x_fake: generated images (B, H, W, C).
    key: PRNG key for ε.
    target: the norm the gradient is pushed towards.

  Precision (with train.compute_dtype = "bfloat16", docs/precision.md): x̂ is formed in
  float32 (or wider) and the inner gradient is taken w.r.t. that float32 x̂, so ∇_x̂ d(x̂) is
  a float32 array: the critic casts x̂ to its compute dtype on entry, and the transpose of
  that cast hands the cotangent back as float32. The per-sample norm, a sum of H·W·C squares, and
  (‖∇‖ - 1)² are then float32. The passes through the critic itself (forward, the inner
  backward and the outer one that differentiates the penalty w.r.t. φ) run in the critic's
  compute dtype, as D's own passes do: bfloat16 has float32's exponent range, so nothing
  underflows, and its ~0.4 % relative rounding of each element averages out in the norm.
  Running the critic in float32 here would give up the saving on the costliest pass of a
  WGAN-GP step, this double backward.
  """
  # At least float32: a wider input (a float64 check) keeps its precision.
  dtype = jnp.promote_types(jnp.result_type(x_real_view, x_fake), jnp.float32)
  x = x_real_view.astype(dtype)
  eps = jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)
  x_hat = eps * x + (1.0 - eps) * x_fake.astype(dtype)
  grads = jax.grad(lambda x: jnp.sum(critic(x).astype(dtype)))(x_hat)
  # The small constant keeps the gradient of the norm finite where ∇ = 0.
  norms = jnp.sqrt(jnp.sum(grads**2, axis=tuple(range(1, grads.ndim))) + 1e-12)
  return jnp.mean((norms - target) ** 2), {"grad_norm": jnp.mean(norms)}


def clip_weights(params: Any, *, clip: float) -> Any:
  """WGAN weight clipping (Arjovsky et al. 2017, Alg. 1): every critic weight into [-c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -clip, clip), params)
