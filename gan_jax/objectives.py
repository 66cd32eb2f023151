"""Adversarial objectives as pure functions, found by name through `OBJECTIVES`.

Every loss term takes keyword-only arguments and returns `(scalar, metrics)`. Arguments without
a default are named quantities the training step provides (see `gan_jax.game`): `d_real` and
`d_fake` are the discriminator's raw outputs (logits or critic values) of shape (B,) on real
and generated images, `x_real` and `x_fake` the images (B, H, W, C) themselves, `critic` the
discriminator as a function of images, `key` a PRNG key for the term. Arguments with a default
are hyperparameters, bound from the config.

Conventions follow `NOTES.md` (Tempered GAN forms): D minimises L_D, G minimises L_G, d is the
pre-sigmoid output, and softplus(-d) = -log sigmoid(d).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax import began as began_lib
from gan_jax.game import Controller, Term
from gan_jax.registry import Registry

Metrics = dict[str, jax.Array]


# ----------------------------------------------------------------------------- minimax / NS


def minimax_discriminator_loss(*, d_real: jax.Array, d_fake: jax.Array,
                               real_label: float = 1.0) -> tuple[jax.Array, Metrics]:
  """Binary cross-entropy of D (Goodfellow et al. 2014, Eq. 1).

  L_D = -E log D(x) - E log(1 - D(G(z))) = softplus(-d(x)) + softplus(d(G(z))).
  With `real_label` = α < 1 this is one-sided label smoothing (Salimans et al. 2016, Sec. 3.4):
  real targets α, fake targets stay 0.
  """
  real = real_label * jax.nn.softplus(-d_real) + (1.0 - real_label) * jax.nn.softplus(d_real)
  loss = jnp.mean(real) + jnp.mean(jax.nn.softplus(d_fake))
  return loss, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake),
                "p_real": jnp.mean(jax.nn.sigmoid(d_real)),
                "p_fake": jnp.mean(jax.nn.sigmoid(d_fake))}


def minimax_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """Saturating minimax generator loss: L_G = E log(1 - D(G(z))) = -softplus(d(G(z)))."""
  return -jnp.mean(jax.nn.softplus(d_fake)), {}


def non_saturating_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """Non-saturating generator loss (Goodfellow et al. 2014, Sec. 3): -log D(G(z)) = softplus(-d)."""
  return jnp.mean(jax.nn.softplus(-d_fake)), {}


# ----------------------------------------------------------------------------- LSGAN


def lsgan_discriminator_loss(*, d_real: jax.Array, d_fake: jax.Array,
                             real_target: float = 1.0,
                             fake_target: float = 0.0) -> tuple[jax.Array, Metrics]:
  """LSGAN discriminator loss (Mao et al. 2017, Eq. 2, a=0, b=1, without the 1/2 factor as in
  Tempered GAN Sec. A.1): (d(x) - b)^2 + (d(G(z)) - a)^2."""
  loss = jnp.mean((d_real - real_target) ** 2) + jnp.mean((d_fake - fake_target) ** 2)
  return loss, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}


def lsgan_generator_loss(*, d_fake: jax.Array, target: float = 1.0) -> tuple[jax.Array, Metrics]:
  """LSGAN generator loss (Mao et al. 2017, Eq. 2, c=1): (d(G(z)) - c)^2."""
  return jnp.mean((d_fake - target) ** 2), {}


# ----------------------------------------------------------------------------- Wasserstein


def wasserstein_critic_loss(*, d_real: jax.Array, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """WGAN critic loss (Arjovsky et al. 2017, Alg. 1): E d(G(z)) - E d(x).

  The metric `wasserstein` is the critic's estimate E d(x) - E d(G(z)) of the distance.
  """
  estimate = jnp.mean(d_real) - jnp.mean(d_fake)
  return -estimate, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake),
                     "wasserstein": estimate}


def wasserstein_generator_loss(*, d_fake: jax.Array) -> tuple[jax.Array, Metrics]:
  """WGAN generator loss: -E d(G(z))."""
  return -jnp.mean(d_fake), {}


def gradient_penalty(*, critic: Callable[[jax.Array], jax.Array], x_real: jax.Array,
                     x_fake: jax.Array, key: jax.Array,
                     target: float = 1.0) -> tuple[jax.Array, Metrics]:
  """WGAN-GP gradient penalty (Gulrajani et al. 2017, Eq. 3, Alg. 1), without its weight λ.

  E_x̂ (‖∇_x̂ d(x̂)‖₂ - 1)², x̂ = εx + (1 - ε)G(z), ε ~ U[0, 1] drawn per sample.

  Args:
    critic: images (B, H, W, C) -> scores (B,). The per-sample gradient is taken as the
      gradient of the sum of scores, which is exact for a critic without batch coupling.
    x_real: real images (B, H, W, C).
    x_fake: generated images (B, H, W, C).
    key: PRNG key for ε.
    target: the norm the gradient is pushed towards.
  """
  eps = jax.random.uniform(key, (x_real.shape[0],) + (1,) * (x_real.ndim - 1), x_real.dtype)
  x_hat = eps * x_real + (1.0 - eps) * x_fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
  # The small constant keeps the gradient of the norm finite where ∇ = 0.
  norms = jnp.sqrt(jnp.sum(grads ** 2, axis=tuple(range(1, grads.ndim))) + 1e-12)
  return jnp.mean((norms - target) ** 2), {"grad_norm": jnp.mean(norms)}


def clip_weights(params: Any, *, clip: float) -> Any:
  """WGAN weight clipping (Arjovsky et al. 2017, Alg. 1): every critic weight into [-c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -clip, clip), params)


# ----------------------------------------------------------------------------- lens terms
# The lens works against D (Tempered GAN Sec. 2, A.1): L_L^A ≈ -L_D on the lensed real data.


def lens_minimax_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Sec. 2: L_L^A = -log(1 - D(L(x))) = softplus(d(L(x)))."""
  return jnp.mean(jax.nn.softplus(d_real)), {}


def lens_lsgan_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Eq. 3: L_L^A = ‖D(L(x))‖², pulling D's output on L(x) to the fake target 0."""
  return jnp.mean(d_real ** 2), {}


def lens_wasserstein_loss(*, d_real: jax.Array) -> tuple[jax.Array, Metrics]:
  """Tempered GAN Eq. 6: L_L^A = D(L(x)), for WGAN and WGAN-GP."""
  return jnp.mean(d_real), {}


# ----------------------------------------------------------------------------- BEGAN
# D is an auto-encoder whose output is the per-sample loss L(v) = |v - D(v)|^η
# (`gan_jax.models.began`), so d_real = L(x) and d_fake = L(G(z)).


def began_discriminator_loss(*, d_real: jax.Array, d_fake: jax.Array,
                             began: Mapping[str, jax.Array]) -> tuple[jax.Array, Metrics]:
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
      discriminator=(Term("adv", functools.partial(minimax_discriminator_loss,
                                                   real_label=cfg["real_label"])),),
      generator=(Term("adv", minimax_generator_loss),),
      lens_adversarial=lens_minimax_loss)


@OBJECTIVES.register("non_saturating")
def _non_saturating(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
      discriminator=(Term("adv", functools.partial(minimax_discriminator_loss,
                                                   real_label=cfg["real_label"])),),
      generator=(Term("adv", non_saturating_generator_loss),),
      lens_adversarial=lens_minimax_loss)


@OBJECTIVES.register("lsgan")
def _lsgan(cfg: Mapping[str, Any]) -> Objective:
  del cfg
  return Objective(discriminator=(Term("adv", lsgan_discriminator_loss),),
                   generator=(Term("adv", lsgan_generator_loss),),
                   lens_adversarial=lens_lsgan_loss)


@OBJECTIVES.register("wgan")
def _wgan(cfg: Mapping[str, Any]) -> Objective:
  return Objective(discriminator=(Term("adv", wasserstein_critic_loss),),
                   generator=(Term("adv", wasserstein_generator_loss),),
                   discriminator_constraint=functools.partial(clip_weights, clip=cfg["clip"]),
                   lens_adversarial=lens_wasserstein_loss)


@OBJECTIVES.register("wgan_gp")
def _wgan_gp(cfg: Mapping[str, Any]) -> Objective:
  return Objective(
      discriminator=(Term("adv", wasserstein_critic_loss),
                     Term("gp", gradient_penalty, weight=cfg["gp_weight"])),
      generator=(Term("adv", wasserstein_generator_loss),),
      lens_adversarial=lens_wasserstein_loss)


@OBJECTIVES.register("began")
def _began(cfg: Mapping[str, Any]) -> Objective:
  # BEGAN Sec. 3.4: both players' gradients at (θ_t, φ_t), with separate z_D and z_G; k_t and
  # the learning-rate factor are the controller's state.
  settings = began_lib.EquilibriumSettings.from_config(cfg)
  return Objective(discriminator=(Term("adv", began_discriminator_loss),),
                   generator=(Term("adv", began_generator_loss),),
                   controllers=(began_lib.equilibrium_controller(settings),),
                   simultaneous=True,
                   update_scale=began_lib.lr_scale,
                   summaries=(began_lib.RECONSTRUCTION_SUMMARY,))
