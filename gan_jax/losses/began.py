"""BEGAN's losses and convergence measure (Berthelot et al. 2017), as pure functions.

D is an auto-encoder whose output is the per-sample loss L(v) = |v - D(v)|^η
(`gan_jax.models.began`), so d_real = L(x) and d_fake = L(G(z)).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


def began_discriminator_loss(
  *, d_real: jax.Array, d_fake: jax.Array, began: Mapping[str, jax.Array]
) -> tuple[jax.Array, Metrics]:
  """BEGAN D loss (Berthelot et al. 2017, Sec. 3.4): L_D = L(x) - k_t·L(G(z_D)).

  Args:
    d_real: L(x) per sample (B,).
    d_fake: L(G(z_D)) per sample (B,).
    began: the equilibrium controller's state; k_t = began["k"] is a constant here.

  Returns:
    (L_D, metrics): `real` = mean L(x), which the controller reads, and `fake` = mean L(G(z_D)).
  """
  real, fake = jnp.mean(d_real), jnp.mean(d_fake)
  return real - began["k"] * fake, {"real": real, "fake": fake}


def began_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """BEGAN G loss (Berthelot et al. 2017, Sec. 3.4): L_G = L(G(z_G)), the mean of d_fake (B,)."""
  return jnp.mean(d_fake), {}


def convergence_measure(real: jax.Array, fake: jax.Array, gamma: float) -> jax.Array:
  """BEGAN Sec. 3.4.1: M_global = L(x) + |γ·L(x) - L(G(z_G))|."""
  return real + jnp.abs(gamma * real - fake)
