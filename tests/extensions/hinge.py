"""The hinge loss (Lim & Ye 2017; Miyato et al. 2018) as a plug-in objective.

  python main.py --plugins=tests.extensions.hinge --config=configs/dcgan.py:smoke \
      --config.objective.name=hinge --workdir=runs/hinge

D minimises E max(0, 1 - d(x)) + E max(0, 1 + d(G(z))) and G minimises -E d(G(z)), with d
D's raw score (B,).
"""

import jax
import jax.numpy as jnp

from gan_jax.core.terms import Term
from gan_jax.objectives import OBJECTIVES, Objective


def hinge_discriminator_loss(*, d_real: jax.Array, d_fake: jax.Array):
  """L_D = E max(0, 1 - d(x)) + E max(0, 1 + d(G(z))).

  Args:
    d_real: D's scores (B,) on the real batch (as D sees it).
    d_fake: D's scores (B,) on G(z).

  Returns:
    (L_D, metrics: the mean scores).
  """
  loss = jnp.mean(jax.nn.relu(1.0 - d_real)) + jnp.mean(jax.nn.relu(1.0 + d_fake))
  return loss, {"d_real": jnp.mean(d_real), "d_fake": jnp.mean(d_fake)}


def hinge_generator_loss(*, d_fake: jax.Array):
  """L_G = -E d(G(z)), with d_fake D's scores (B,) on G(z)."""
  return -jnp.mean(d_fake), {}


def hinge_lens_loss(*, d_real: jax.Array):
  """The Tempered GAN lens' adversarial term: D's fake-side hinge on the lensed reals (B,)."""
  return jnp.mean(jax.nn.relu(1.0 + d_real)), {}


@OBJECTIVES.register("hinge")
def hinge(cfg):
  """The hinge objective; it reads no field of the `objective` config section `cfg`."""
  del cfg
  return Objective(
    discriminator=(Term("adv", hinge_discriminator_loss),),
    generator=(Term("adv", hinge_generator_loss),),
    lens_adversarial=hinge_lens_loss,
  )
