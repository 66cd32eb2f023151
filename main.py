r"""Trains a GAN (see gan_jax/cli/train.py for the flags).

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan
  python main.py --config=configs/wgan_gp.py:cifar10 --workdir=runs/wgan_gp \
      --config.train.steps=100000
"""

from gan_jax.cli import train

if __name__ == "__main__":
  train.run()
