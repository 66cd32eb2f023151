"""R1 regularisation (Mescheder et al. 2018, Eq. 9) as a plug-in stabiliser.

D's loss gains (γ/2)·E_x ‖∇_x D(x)‖₂², the squared gradient norm of D on real data. It is on
when "r1" is in config.stabilisers and the config has a section `r1` with a field `gamma`:

  config.stabilisers = "r1"
  config.r1 = r1.default_config()   # gamma = 10
"""

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax.builder import STABILISERS
from gan_jax.core.registry import field_reader
from gan_jax.core.terms import Term


def r1_penalty(*, critic, x_real_view: jax.Array):
  """E_x ‖∇_x d(x)‖₂² over the real batch, without the factor γ/2 (the term's weight).

  Args:
    critic: images (B, H, W, C) -> D's scores (B,); its passes write no BatchNorm statistics.
    x_real_view: the real images (B, H, W, C) as D sees them.

  Returns:
    (the mean squared gradient norm, {"grad_norm": the mean gradient norm}).
  """
  # The gradient of the summed scores is each image's own gradient when D does not couple
  # the images of a batch (no BatchNorm), as in the WGAN-GP penalty.
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_real_view)
  squared = jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1)
  return jnp.mean(squared), {"grad_norm": jnp.mean(jnp.sqrt(squared))}


def default_config() -> ml_collections.ConfigDict:
  """The `r1` config section."""
  return ml_collections.ConfigDict({"gamma": 10.0})  # γ: the penalty's weight is γ/2.


@STABILISERS.register("r1")
def add_r1(builder, cfg, step):
  """Adds the term "r1" with weight γ/2 to D's phase (config section `r1`)."""
  del step  # the same at every step
  gamma = float(field_reader(cfg, "r1")("gamma"))
  builder.add_terms("d", Term("r1", r1_penalty, weight=gamma / 2))
