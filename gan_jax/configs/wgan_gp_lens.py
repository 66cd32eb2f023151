r"""The headline run: WGAN-GP (Gulrajani et al. 2017) with Tempered GAN's lens (lens term
D(L(x)), Eq. 6), on Fashion-MNIST from Debian's dataset-fashion-mnist by default.

  python main.py --config=configs/wgan_gp_lens.py --workdir=runs/wgan_gp_lens
  python main.py --config=configs/wgan_gp_lens.py:cifar10 --workdir=runs/c10 \
      --config.lens.K=100000
"""

from gan_jax.configs import wgan_gp


def get_config(arg=None):
  config = wgan_gp.get_config(arg)
  config.stabilisers = "lens"
  return config
