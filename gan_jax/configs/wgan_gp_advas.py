"""WGAN-GP with AdvAs (the Adversary's Assistant), hyperparameter-free λ, r from the critic's
whole loss including the gradient penalty (as in the AdvAs paper's MNIST WGAN-GP experiment)."""

from gan_jax.configs import wgan_gp


def get_config(arg=None):
  config = wgan_gp.get_config(arg)
  config.stabilisers = "advas"
  return config
