"""DCGAN with the original (saturating) minimax generator loss (Goodfellow et al. 2014, Eq. 1)."""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  config.objective.name = "minimax"
  return config
