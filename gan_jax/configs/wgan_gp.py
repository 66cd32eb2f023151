"""WGAN-GP (Gulrajani et al. 2017, Alg. 1): λ_gp = 10, n_critic = 5, Adam(1e-4, β1 0.5, β2 0.9)
as in the paper's DCGAN-architecture experiments (β1 = 0 in Alg. 1), no BatchNorm in the
critic, Xavier initialisation as in Tempered GAN."""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  config.objective.name = "wgan_gp"
  config.model.discriminator_norm = "none"
  config.model.init = "xavier"
  config.optim.generator = dcgan.optimizer("adam", 1e-4, b1=0.5, b2=0.9)
  config.optim.discriminator = dcgan.optimizer("adam", 1e-4, b1=0.5, b2=0.9)
  config.train.n_critic = 5
  return config
