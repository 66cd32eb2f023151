"""LSGAN (Mao et al. 2017) with a=0, b=c=1, on the DCGAN networks."""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  config.objective.name = "lsgan"
  return config
