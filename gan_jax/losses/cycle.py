"""Cycle-consistency and identity losses of CycleGAN (Zhu et al. 2017, Sec. 3.2 and 5.2).

G: X -> Y and F: Y -> X. Every loss takes keyword-only arguments (named quantities of
`gan_jax.games.cyclegan`, images (B, H, W, C) in [-1, 1]) and returns `(scalar, metrics)`.
The L1 norms are means over all elements, as the reference implementation's `nn.L1Loss`
(junyanz/pytorch-CycleGAN-and-pix2pix, models/cycle_gan_model.py), not the paper's sums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


def mean_absolute_error(a: jax.Array, b: jax.Array) -> jax.Array:
  """‖a − b‖₁ / n over all n elements (PyTorch's L1Loss with reduction "mean")."""
  return jnp.mean(jnp.abs(a - b))


def cycle_consistency_loss(
  *,
  x_real: jax.Array,
  x_cycle: jax.Array,
  y_real: jax.Array,
  y_cycle: jax.Array,
  weight: float = 10.0,
) -> tuple[jax.Array, Metrics]:
  """Cycle-consistency loss (Zhu et al. 2017, Eq. 2, weighted by λ of Eq. 3).

  L_cyc = λ_cyc (‖F(G(x)) − x‖₁ + ‖G(F(y)) − y‖₁), each norm a mean absolute error.

  Args:
    x_real: real images of X (B, H, W, C).
    x_cycle: F(G(x)) (B, H, W, C).
    y_real: real images of Y (B, H, W, C).
    y_cycle: G(F(y)) (B, H, W, C).
    weight: λ_cyc (10 in the paper; the reference's lambda_A = lambda_B = 10).

  Returns:
    (L_cyc, {"x": ‖F(G(x)) − x‖₁, "y": ‖G(F(y)) − y‖₁}), the metrics unweighted.
  """
  loss_x = mean_absolute_error(x_cycle, x_real)
  loss_y = mean_absolute_error(y_cycle, y_real)
  return weight * (loss_x + loss_y), {"x": loss_x, "y": loss_y}


def identity_loss(
  *,
  x_real: jax.Array,
  x_identity: jax.Array,
  y_real: jax.Array,
  y_identity: jax.Array,
  cycle_weight: float = 10.0,
  identity_weight: float = 0.5,
) -> tuple[jax.Array, Metrics]:
  """Identity mapping loss (Zhu et al. 2017, Sec. 5.2, after Taigman et al. 2017).

  L_idt = λ_idt · λ_cyc (‖G(y) − y‖₁ + ‖F(x) − x‖₁): G should leave images of its target
  domain Y unchanged, F those of X. The weight is relative to λ_cyc as in the reference
  (`lambda_identity` 0.5 times lambda_A / lambda_B), 0.5 · λ_cyc in the paper's photo ↔
  painting experiments.

  Args:
    x_real: real images of X (B, H, W, C).
    x_identity: F(x) (B, H, W, C).
    y_real: real images of Y (B, H, W, C).
    y_identity: G(y) (B, H, W, C).
    cycle_weight: λ_cyc.
    identity_weight: λ_idt, the identity weight relative to λ_cyc.

  Returns:
    (L_idt, {"x": ‖F(x) − x‖₁, "y": ‖G(y) − y‖₁}), the metrics unweighted.
  """
  loss_x = mean_absolute_error(x_identity, x_real)
  loss_y = mean_absolute_error(y_identity, y_real)
  return identity_weight * cycle_weight * (loss_x + loss_y), {"x": loss_x, "y": loss_y}
