"""Non-saturating DCGAN with AdvAs (the Adversary's Assistant), hyperparameter-free λ."""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  config.stabilisers = "advas"
  return config
