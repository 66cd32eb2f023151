"""Weight initialisers selectable by name (config field `model.init`)."""

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core.registry import Registry

# Each entry: (kernel_init, bn_scale_init).
INITIALIZERS = Registry("initialiser")

INITIALIZERS.register("xavier")(
  # Tempered GAN Sec. A.2: "we initialize the networks with the Xavier initialization".
  (nn.initializers.xavier_uniform(), nn.initializers.ones)
)


def _normal_around_one(stddev):
  def init(key, shape, dtype=jnp.float32):
    return 1.0 + stddev * jax.random.normal(key, shape, dtype)

  return init


INITIALIZERS.register("normal")(
  # DCGAN (Radford et al. 2016, Sec. 4): weights from N(0, 0.02); BN scale from N(1, 0.02)
  # as in the reference PyTorch DCGAN code.
  (nn.initializers.normal(0.02), _normal_around_one(0.02))
)
