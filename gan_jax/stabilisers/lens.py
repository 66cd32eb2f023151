"""Tempered GAN's lens (Sajjadi et al. 2018): D sees L(x) instead of x.

The lens is a third network trained once per iteration, after D and G, on
L_L = λ(t) · L_L^A + L_L^R, where L_L^A works against D (the objective's `lens_adversarial`
term) and L_L^R = ‖x - L(x)‖₂² keeps L close to the identity. λ(t) = 1 - sin(tπ / 2K) for
t ≤ K and 0 after (Eq. 7), or a constant (Sec. A.4.1), is the state of a controller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.builder import STABILISERS, SpecBuilder, Summary
from gan_jax.core.phases import Controller, Phase
from gan_jax.core.registry import ConfigError, check_choice, field_reader
from gan_jax.core.terms import Term
from gan_jax.losses.lens import reconstruction_loss
from gan_jax.models.lens import Lens

SCHEDULES = ("sine", "constant")


def lens_lambda(step: jax.Array, *, schedule: str, K: int, value: float = 1.0) -> jax.Array:
  """λ(t) of Tempered GAN Eq. 7: 1 - sin(tπ/2K) for t ≤ K, else 0; or `value` if constant."""
  if schedule == "constant":
    return jnp.asarray(value, jnp.float32)
  t = jnp.asarray(step, jnp.float32)
  return jnp.where(t <= K, 1.0 - jnp.sin(t * math.pi / (2 * K)), 0.0).astype(jnp.float32)


def _adversarial_term(objective_term):

  def lens_adversarial(*, d_real: jax.Array, d_real_plain: jax.Array):
    value, metrics = objective_term(d_real=d_real)
    # D's outputs on L(x) and on x itself, to watch the lens work against D.
    return value, {
      **metrics,
      "d_lensed": jnp.mean(d_real),
      "d_data": jnp.mean(jax.lax.stop_gradient(d_real_plain)),
    }

  return lens_adversarial


def _lens_view(game, state, images):
  lensed = game.run("lens", state.params, dict(state.model_state), images, train=False)
  return images, lensed["output"]


@STABILISERS.register("lens")
def add_lens(builder: SpecBuilder, cfg: Mapping[str, Any], step: int) -> None:
  """Adds the lens network, its phase and the λ controller (config section `lens`)."""
  get = field_reader(cfg, "lens")
  schedule = check_choice(get("schedule"), SCHEDULES, "lens.schedule")
  check_choice(get("reconstruction"), ("sum", "mean"), "lens.reconstruction")
  K, value = int(get("K")), float(get("lambda_value"))
  if K < 1:
    raise ConfigError(f"lens.K must be >= 1, got {K}")
  if builder.objective.lens_adversarial is None:
    raise ConfigError(f"objective {builder.config.objective.name!r} has no lens term")
  height, width, channels = builder.image_shape
  builder.add_network(
    "lens",
    Lens(
      width=get("width"),
      blocks=get("blocks"),
      norm=get("norm"),
      init_scheme=get("init"),
      zero_init_output=get("zero_init_output"),
      dtype=builder.compute_dtype,
    ),
    (1, height, width, channels),
  )
  lam = lambda t: lens_lambda(t, schedule=schedule, K=K, value=value)
  builder.controllers.append(
    Controller(
      name="lens",
      init=lambda: {"lambda": lam(0)},
      # Reports the λ this iteration used and stores λ(t + 1) for the next one.
      update=lambda state, *, metrics, step: (
        {"lambda": lam(step + 1)},
        {"lambda": state["lambda"]},
      ),
    )
  )

  drop_after = int(get("drop_after"))
  if drop_after and step >= drop_after:
    # The lens stays in the state (checkpoints stay compatible) but leaves the game.
    return
  if drop_after:
    builder.schedule_rebuild(drop_after)
  builder.real_view = "lens"
  reduction = get("reconstruction")
  builder.phases.append(
    Phase(
      "lens",
      "lens",
      (
        Term(
          "adv",
          _adversarial_term(builder.objective.lens_adversarial),
          weight=lambda aux: aux["lens"]["lambda"],
        ),
        Term(
          "recon",
          lambda *, x_real, x_real_view: reconstruction_loss(
            x_real=x_real, x_real_view=x_real_view, reduction=reduction
          ),
        ),
      ),
    )
  )
  builder.summaries.append(Summary(("real", "lensed"), _lens_view))
