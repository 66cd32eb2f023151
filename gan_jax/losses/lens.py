"""The Tempered GAN lens' losses (Sajjadi et al. 2018), as pure functions.

The lens L works against D (Sec. 2, A.1): its adversarial term L_L^A ≈ -L_D on the lensed
real data, one form per objective; its reconstruction term L_L^R = ‖x - L(x)‖₂² keeps it close
to the identity. `d_real` is D's output on the lensed batch L(x) (B,).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


def lens_minimax_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Sec. 2: L_L^A = -log(1 - D(L(x))) = softplus(d(L(x)))."""
  return jnp.mean(jax.nn.softplus(d_real)), {}


def lens_lsgan_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Eq. 3: L_L^A = ‖D(L(x))‖², pulling D's output on L(x) to the fake target 0."""
  return jnp.mean(d_real**2), {}


def lens_wasserstein_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Eq. 6: L_L^A = D(L(x)), for WGAN and WGAN-GP."""
  return jnp.mean(d_real), {}


def reconstruction_loss(
  *, x_real: jax.Array, x_real_view: jax.Array, reduction: str = "sum"
) -> tuple[jax.Array, Metrics]:
  """L_L^R = ‖x - L(x)‖₂² (Tempered GAN Sec. 2), averaged over the batch.

  Args:
    x_real: real images x (B, H, W, C).
    x_real_view: lensed images L(x) (B, H, W, C).
    reduction: "sum" over pixels (the paper's squared norm) or "mean" over pixels.
  """
  sq = jnp.square(x_real - x_real_view).reshape(x_real.shape[0], -1)
  per_image = jnp.sum(sq, axis=1) if reduction == "sum" else jnp.mean(sq, axis=1)
  return jnp.mean(per_image), {"mse": jnp.mean(sq)}
