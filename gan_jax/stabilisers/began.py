"""BEGAN's state outside the networks (Berthelot et al. 2017): the equilibrium controller k_t,
the convergence measure M_global, learning-rate halving, and the vanishing-residual schedule.

The controller's state lives in `TrainState.aux["began"]` (so it is checkpointed and a resumed
run continues the same trajectory):

  k           k_t, the weight of L(G(z_D)) in D's loss, in [0, 1] (Sec. 3.4).
  lr_scale    the factor multiplying both optimisers' updates (`Phase.update_scale`); for Adam
              that is exactly the learning rate times lr_scale.
  m_ema, ema_weight
              an exponential moving average of M_global and its bias correction; M_global of
              one batch is noisy, so a stall is judged on the average.
  best, wait  the lowest average seen (less a relative threshold) and the iterations since.

The vanishing-residual carry (Sec. 3.5.1) is a static attribute of the networks, a function of
the training step: the `vanishing_residual` stabiliser builds the networks with carry(t) and
asks the training loop to rebuild the spec at the next change, so the compiled step holds no
schedule logic and a resumed run rebuilds the same networks from its step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.builder import STABILISERS, SpecBuilder, Summary
from gan_jax.core.phases import Controller
from gan_jax.core.registry import ConfigError, check_choice, field_reader
from gan_jax.losses.began import convergence_measure

NAME = "began"
LR_SCHEDULES = ("plateau", "interval", "none")
# The "no minimum yet" value of `best`: finite, so the state stays finite everywhere.
_NO_BEST = float(jnp.finfo(jnp.float32).max)


@dataclasses.dataclass(frozen=True)
class EquilibriumSettings:
  """Hyperparameters of the controller (config section `objective`).

  Attributes:
    gamma: γ, the diversity ratio E[L(G(z))] / E[L(x)] the controller aims for (Sec. 3.3).
    lambda_k: λ_k, the proportional gain of k_t (0.001 in the paper).
    k_init: k_0 (0 in the paper).
    lr_schedule: "plateau" (halve when M_global stalls, Sec. 4), "interval" (halve every
      `lr_interval` steps, as the public code) or "none".
    lr_factor: the factor applied at each decay (0.5: halving).
    lr_min_scale: the lowest lr_scale (public code: a lower bound on the learning rate).
    lr_patience: iterations without a new minimum of the averaged M_global before a decay.
    lr_threshold: relative improvement of the averaged M_global that counts as a new minimum.
    lr_interval: iterations between decays for lr_schedule="interval".
    m_global_decay: decay of the moving average of M_global the stall test looks at.
    real_metric: the iteration metric holding mean L(x) of D's update.
    fake_metric: the iteration metric holding mean L(G(z_G)) of G's update.
  """

  gamma: float = 0.5
  lambda_k: float = 0.001
  k_init: float = 0.0
  lr_schedule: str = "plateau"
  lr_factor: float = 0.5
  lr_min_scale: float = 0.02
  lr_patience: int = 2000
  lr_threshold: float = 0.01
  lr_interval: int = 100000
  m_global_decay: float = 0.99
  real_metric: str = "d/adv/real"
  fake_metric: str = "g/adv"

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any]) -> EquilibriumSettings:
    """Reads the fields of the `objective` config section, checking their ranges."""
    get = field_reader(cfg, "objective")
    settings = cls(
      gamma=float(get("gamma")),
      lambda_k=float(get("lambda_k")),
      k_init=float(get("k_init")),
      lr_schedule=check_choice(get("lr_schedule"), LR_SCHEDULES, "objective.lr_schedule"),
      lr_factor=float(get("lr_factor")),
      lr_min_scale=float(get("lr_min_scale")),
      lr_patience=int(get("lr_patience")),
      lr_threshold=float(get("lr_threshold")),
      lr_interval=int(get("lr_interval")),
      m_global_decay=float(get("m_global_decay")),
    )
    if not 0.0 < settings.gamma <= 1.0:
      raise ConfigError(f"objective.gamma must be in (0, 1], got {settings.gamma}")
    if not 0.0 <= settings.k_init <= 1.0:
      raise ConfigError(f"objective.k_init must be in [0, 1], got {settings.k_init}")
    if not 0.0 < settings.lr_factor <= 1.0:
      raise ConfigError(f"objective.lr_factor must be in (0, 1], got {settings.lr_factor}")
    if settings.lr_patience < 1 or settings.lr_interval < 1:
      raise ConfigError("objective.lr_patience and objective.lr_interval must be >= 1")
    if not 0.0 <= settings.m_global_decay < 1.0:
      raise ConfigError(
        f"objective.m_global_decay must be in [0, 1), got {settings.m_global_decay}"
      )
    return settings


def init_state(settings: EquilibriumSettings) -> dict[str, jax.Array]:
  """The controller's state before the first iteration: k = k_0, full learning rate."""
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  return {
    "k": f32(settings.k_init),
    "lr_scale": f32(1.0),
    "m_ema": f32(0.0),
    "ema_weight": f32(0.0),
    "best": f32(_NO_BEST),
    "wait": jnp.zeros((), jnp.int32),
  }


def _lr_update(
  state: Mapping[str, jax.Array],
  m_global: jax.Array,
  step: jax.Array,
  settings: EquilibriumSettings,
) -> dict[str, jax.Array]:
  """The learning-rate part of the state after one iteration (BEGAN Sec. 4: "decaying by a
  factor of 2 when the measure of convergence stalls"; the public code: every fixed interval)."""
  s = settings
  scale, best, wait = state["lr_scale"], state["best"], state["wait"]
  m_ema = s.m_global_decay * state["m_ema"] + (1.0 - s.m_global_decay) * m_global
  ema_weight = s.m_global_decay * state["ema_weight"] + (1.0 - s.m_global_decay)
  average = m_ema / ema_weight
  if s.lr_schedule == "plateau":
    improved = average < best * (1.0 - s.lr_threshold)
    best = jnp.where(improved, average, best)
    wait = jnp.where(improved, 0, wait + 1)
    stalled = wait >= s.lr_patience
    scale = jnp.where(stalled, jnp.maximum(scale * s.lr_factor, s.lr_min_scale), scale)
    # After a decay the plateau is judged afresh from the current average.
    best = jnp.where(stalled, average, best)
    wait = jnp.where(stalled, 0, wait)
  elif s.lr_schedule == "interval":
    decays = ((step + 1) // s.lr_interval).astype(jnp.float32)
    scale = jnp.maximum(s.lr_factor**decays, s.lr_min_scale)
  return {
    "lr_scale": scale.astype(jnp.float32),
    "m_ema": m_ema,
    "ema_weight": ema_weight,
    "best": best.astype(jnp.float32),
    "wait": wait.astype(jnp.int32),
  }


def update_state(
  state: Mapping[str, jax.Array],
  *,
  metrics: Mapping[str, jax.Array],
  step: jax.Array,
  settings: EquilibriumSettings,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """BEGAN Sec. 3.4: k_{t+1} = clip(k_t + λ_k·(γ·L(x) - L(G(z_G))), 0, 1), and the learning
  rate's schedule; reports k_t, M_global (Sec. 3.4.1), the ratio achieved L(G(z_G)) / L(x)
  (the γ of Sec. 3.3 actually reached) and the learning-rate factor this iteration used.

  Args:
    state: the controller state (see the module docstring).
    metrics: the iteration's metrics; `settings.real_metric` holds mean L(x) of D's update,
      `settings.fake_metric` mean L(G(z_G)) of G's update.
    step: the iteration that just ran.
    settings: the hyperparameters.

  Returns:
    (new state, metrics named k, m_global, ratio, gamma, balance, lr_scale).
  """
  real, fake = metrics[settings.real_metric], metrics[settings.fake_metric]
  balance = settings.gamma * real - fake
  k = jnp.clip(state["k"] + settings.lambda_k * balance, 0.0, 1.0)
  m_global = convergence_measure(real, fake, settings.gamma)
  new_state = {"k": k.astype(jnp.float32), **_lr_update(state, m_global, step, settings)}
  ratio = jnp.where(real > 0, fake / jnp.where(real > 0, real, 1.0), 0.0)
  return new_state, {
    "k": state["k"],
    "m_global": m_global,
    "ratio": ratio,
    "gamma": jnp.asarray(settings.gamma, jnp.float32),
    "balance": balance,
    "lr_scale": state["lr_scale"],
  }


def equilibrium_controller(settings: EquilibriumSettings) -> Controller:
  """The controller "began" (state in `TrainState.aux["began"]`)."""

  def update(state, *, metrics, step):
    return update_state(state, metrics=metrics, step=step, settings=settings)

  return Controller(name=NAME, init=lambda: init_state(settings), update=update)


def lr_scale(aux: Mapping[str, Any]) -> jax.Array:
  """The update scale of D's and G's phases: the controller's learning-rate factor."""
  return aux[NAME]["lr_scale"]


def _reconstructions(game, state, images):
  """Real images and D's reconstructions of them (the auto-encoder, BEGAN Sec. 3.1)."""
  out = game.run(game.discriminator, state.params, dict(state.model_state), images, train=False)
  return images, out["reconstruction"]


RECONSTRUCTION_SUMMARY = Summary(("real_data", "d_reconstruction"), _reconstructions)


# ----------------------------------------------------------------------------- carry


def carry_schedule(step: int, steps: int, stages: int) -> tuple[float, int | None]:
  """The vanishing-residual carry at `step` (BEGAN Sec. 3.5.1: annealed from 1 to 0 over
  `steps` iterations), in `stages` equal steps, and the step of its next change.

  Returns:
    (carry, next change or None once the carry is 0).
  """
  stage = min(step * stages // steps, stages)
  if stage == stages:
    return 0.0, None
  return 1.0 - stage / stages, math.ceil((stage + 1) * steps / stages)


@STABILISERS.register("vanishing_residual")
def add_vanishing_residuals(builder: SpecBuilder, cfg: Mapping[str, Any], step: int) -> None:
  """BEGAN Sec. 3.5.1: in_{x+1} = carry·in_x + (1 - carry)·out_x in every network with a
  `carry` attribute, carry going from 1 to 0 (config section `vanishing_residual`)."""
  get = field_reader(cfg, "vanishing_residual")
  steps, stages = int(get("steps")), int(get("stages"))
  if steps < 1 or not 1 <= stages <= steps:
    raise ConfigError(
      f"vanishing_residual needs steps >= 1 and 1 <= stages <= steps, got "
      f"steps={steps}, stages={stages}"
    )
  carry, next_change = carry_schedule(step, steps, stages)
  names = [n for n, net in builder.networks.items() if hasattr(net.module, "carry")]
  if not names:
    raise ConfigError(
      f"model {builder.config.model.name!r} has no vanishing residuals; they "
      "need a model with a carry (model.name=began)"
    )
  for name in names:
    net = builder.networks[name]
    builder.networks[name] = dataclasses.replace(net, module=net.module.clone(carry=carry))
  if next_change is not None:
    builder.schedule_rebuild(next_change)
