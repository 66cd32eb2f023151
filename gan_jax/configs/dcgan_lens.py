"""Non-saturating DCGAN with Tempered GAN's lens (Sajjadi et al. 2018): Adam(1e-4, β1 0.5),
Xavier initialisation, batch 64, λ(t) = 1 - sin(tπ/2K) with K = 10k (Sec. A.2, A.3, Fig. 2).

  python main.py --config=configs/dcgan_lens.py:stacked_fashion_mnist --workdir=runs/x
"""

from gan_jax.configs import dcgan


def tempered_gan(config):
  """The Tempered GAN training set-up of Sec. A.2 on top of a DCGAN-family config."""
  config.model.init = "xavier"
  config.optim.generator.learning_rate = 1e-4
  config.optim.discriminator.learning_rate = 1e-4
  config.train.batch_size = 64
  return config


def get_config(arg=None):
  config = tempered_gan(dcgan.get_config(arg))
  config.stabilisers = "lens"
  return config
