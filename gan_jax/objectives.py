"""Adversarial objectives, found by name through `OBJECTIVES` (config field objective.name).

An objective binds the pure losses of `gan_jax.losses` to the config: the terms of each
player, a weight constraint, the lens' adversarial term, and the controllers its terms read.
A new objective is one function registered here (or in a plug-in module):

  @OBJECTIVES.register("hinge")
  def _hinge(cfg):  # cfg: the `objective` config section as a dict
    return Objective(discriminator=(Term("adv", hinge_d),), generator=(Term("adv", hinge_g),))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax

from gan_jax.core.phases import Controller
from gan_jax.core.registry import Registry
from gan_jax.core.terms import Term
from gan_jax.losses.adversarial import (
  clip_weights,
  gradient_penalty,
  lsgan_discriminator_loss,
  lsgan_generator_loss,
  minimax_discriminator_loss,
  minimax_generator_loss,
  non_saturating_generator_loss,
  wasserstein_critic_loss,
  wasserstein_generator_loss,
)
from gan_jax.losses.began import began_discriminator_loss, began_generator_loss
from gan_jax.losses.lens import lens_lsgan_loss, lens_minimax_loss, lens_wasserstein_loss
from gan_jax.stabilisers import began as began_lib

Metrics = dict[str, jax.Array]


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Objective:
  """An adversarial objective: the loss terms of each player and any weight constraint.

  Attributes:
    discriminator: terms summed into D's loss.
    generator: terms summed into G's loss.
    discriminator_constraint: params -> params, applied after every D update (WGAN clipping).
    lens_adversarial: the lens' adversarial term L_L^A for this objective (Tempered GAN).
    controllers: controllers the objective's terms depend on (BEGAN's k_t).
    simultaneous: G's gradient is taken at D's parameters from the start of the iteration,
      so D and G are updated simultaneously (BEGAN) rather than alternately.
    update_scale: aux -> factor on D's and G's optimiser updates (a learning-rate schedule
      kept in a controller's state), or None.
    summaries: image panels for the sample grids (BEGAN: D's reconstructions).
  """

  discriminator: tuple[Term, ...]
  generator: tuple[Term, ...]
  discriminator_constraint: Callable[[Any], Any] | None = None
  lens_adversarial: Callable[..., tuple[jax.Array, Metrics]] | None = None
  controllers: tuple[Controller, ...] = ()
  simultaneous: bool = False
  update_scale: Callable[[Mapping[str, Any]], jax.Array] | None = None
  summaries: tuple[Any, ...] = ()


OBJECTIVES: Registry[Callable[[Mapping[str, Any]], Objective]] = Registry("objective")


@OBJECTIVES.register("minimax")
def _minimax(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
    discriminator=(
      Term("adv", functools.partial(minimax_discriminator_loss, real_label=cfg["real_label"])),
    ),
    generator=(Term("adv", minimax_generator_loss),),
    lens_adversarial=lens_minimax_loss,
  )


@OBJECTIVES.register("non_saturating")
def _non_saturating(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
    discriminator=(
      Term("adv", functools.partial(minimax_discriminator_loss, real_label=cfg["real_label"])),
    ),
    generator=(Term("adv", non_saturating_generator_loss),),
    lens_adversarial=lens_minimax_loss,
  )


@OBJECTIVES.register("lsgan")
def _lsgan(cfg: Mapping[str, Any]) -> Objective:
  # objective.real_label = α < 1 is one-sided label smoothing of D's real target b (Salimans
  # et al. 2016, Sec. 3.4); the fake target a = 0 and G's target c = 1 stay. The default of a
  # config without the field is the plain LSGAN.
  real_target = cfg.get("real_label", 1.0)
  return Objective(
    discriminator=(
      Term("adv", functools.partial(lsgan_discriminator_loss, real_target=real_target)),
    ),
    generator=(Term("adv", lsgan_generator_loss),),
    lens_adversarial=lens_lsgan_loss,
  )


@OBJECTIVES.register("wgan")
def _wgan(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
    discriminator=(Term("adv", wasserstein_critic_loss),),
    generator=(Term("adv", wasserstein_generator_loss),),
    discriminator_constraint=functools.partial(clip_weights, clip=cfg["clip"]),
    lens_adversarial=lens_wasserstein_loss,
  )


@OBJECTIVES.register("wgan_gp")
def _wgan_gp(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
    discriminator=(
      Term("adv", wasserstein_critic_loss),
      Term("gp", gradient_penalty, weight=cfg["gp_weight"]),
    ),
    generator=(Term("adv", wasserstein_generator_loss),),
    lens_adversarial=lens_wasserstein_loss,
  )


@OBJECTIVES.register("began")
def _began(cfg: Mapping[str, Any]) -> Objective:
  # BEGAN Sec. 3.4: both players' gradients at (θ_t, φ_t), with separate z_D and z_G; k_t and
  # the learning-rate factor are the controller's state.
  settings = began_lib.EquilibriumSettings.from_config(cfg)
  return Objective(
    discriminator=(Term("adv", began_discriminator_loss),),
    generator=(Term("adv", began_generator_loss),),
    controllers=(began_lib.equilibrium_controller(settings),),
    simultaneous=True,
    update_scale=began_lib.lr_scale,
    summaries=(began_lib.RECONSTRUCTION_SUMMARY,),
  )
