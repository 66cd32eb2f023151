"""LSGAN with Tempered GAN's lens (lens term ‖D(L(x))‖², Eq. 3)."""

from gan_jax.configs import dcgan_lens, lsgan


def get_config(arg=None):
  config = dcgan_lens.tempered_gan(lsgan.get_config(arg))
  config.stabilisers = "lens"
  return config
