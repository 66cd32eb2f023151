"""WGAN with weight clipping (Arjovsky et al. 2017, Alg. 1): RMSProp 5e-5, c = 0.01,
n_critic = 5, DCGAN networks with BatchNorm in the critic as in the paper's experiments."""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  config.objective.name = "wgan"
  config.optim.generator = dcgan.optimizer("rmsprop", 5e-5)
  config.optim.discriminator = dcgan.optimizer("rmsprop", 5e-5)
  config.train.n_critic = 5
  return config
