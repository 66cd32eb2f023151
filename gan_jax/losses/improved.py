"""Losses of Improved Techniques for Training GANs (Salimans et al. 2016) as pure functions.

Every loss takes keyword-only arguments and returns `(scalar, metrics)`; arguments without a
default are named quantities of the game, the others hyperparameters bound from the config.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]

# How the moment difference m = E f(x) − E f(G(z)) of feature matching is reduced to a scalar.
#   squared_l2    ‖m‖₂², the paper's Sec. 3.1.
#   mean_squared  mean_k m_k², the released code's MNIST loss (‖m‖₂² / F).
#   mean_abs      mean_k |m_k|, the released code's CIFAR-10 loss.
FEATURE_DISTANCES = ("squared_l2", "mean_squared", "mean_abs")


def feature_matching_loss(
  *, features_real: jax.Array, features_fake: jax.Array, distance: str = "squared_l2"
) -> tuple[jax.Array, Metrics]:
  """Feature matching (Salimans et al. 2016, Sec. 3.1): ‖E_x f(x) − E_z f(G(z))‖₂².

  f is an intermediate layer of D; the expectations are minibatch means. Only G is trained on
  this loss (the features of the real batch carry no gradient to G's parameters).

  Args:
    features_real: D's features (B, ...) of the real batch (as D sees it).
    features_fake: D's features (B, ...) of G(z), from the pass that gives D's scores.
    distance: one of FEATURE_DISTANCES.

  Returns:
    (the distance of the mean features, {"gap": mean_k |m_k|}).
  """
  diff = jnp.mean(features_real, axis=0) - jnp.mean(features_fake, axis=0)
  if distance == "squared_l2":
    loss = jnp.sum(jnp.square(diff))
  elif distance == "mean_squared":
    loss = jnp.mean(jnp.square(diff))
  elif distance == "mean_abs":
    loss = jnp.mean(jnp.abs(diff))
  else:
    raise ValueError(f"unknown feature distance {distance!r}; valid: {FEATURE_DISTANCES}")
  return loss, {"gap": jnp.mean(jnp.abs(diff))}


def historical_averaging_penalty(*, params: Any, average: Any) -> tuple[jax.Array, Metrics]:
  """Historical averaging (Salimans et al. 2016, Sec. 3.3): ‖θ − (1/t) Σ_{i≤t} θ[i]‖₂².

  The average is a constant here (it is controller state, `gan_jax.stabilisers.improved`), so
  the gradient is 2(θ − average).

  Args:
    params: the player's parameters θ (a pytree).
    average: the historical average of θ (a pytree of the same structure).

  Returns:
    (the squared distance summed over every parameter, {"distance": its square root}).
  """
  diffs = jax.tree.map(lambda p, a: p - jax.lax.stop_gradient(a), params, average)
  squared = sum(jnp.sum(jnp.square(d)) for d in jax.tree.leaves(diffs))
  return squared, {"distance": jnp.sqrt(squared)}
