"""gan_jax: GAN training-stabilisation methods as pure JAX/Flax functions."""

from setuptools import find_packages, setup

setup(
  name="gan_jax",
  version="0.1.0",
  description="JAX/Flax GAN library and trainer: DCGAN, LSGAN, WGAN, WGAN-GP, the Tempered "
  "GAN lens, AdvAs, BEGAN; FID, KID, IS, precision/recall",
  packages=find_packages(include=["gan_jax", "gan_jax.*"]),
  python_requires=">=3.10",
  entry_points={
    "console_scripts": [
      "gan-jax-train=gan_jax.cli.train:run",
      "gan-jax-evaluate=gan_jax.cli.evaluate:run",
      "gan-jax-sample=gan_jax.cli.sample:run",
    ]
  },
  install_requires=[
    "jax>=0.7",
    "flax>=0.10",
    "optax>=0.2.5",
    "chex>=0.1.90",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "absl-py",
    "numpy",
    "scipy",
    "pillow",
    "matplotlib",
    "scikit-learn",
    "tensorboardX",
  ],
  extras_require={
    # Stock TFDS datasets (cifar10, celeb_a, svhn_cropped, lsun, ...); no TensorFlow needed
    # for ArrayRecord data sources.
    "tfds": ["tensorflow-datasets>=4.9"],
    # nbclient, nbformat and ipykernel execute the notebooks of colab/ (tests/test_notebooks.py).
    "test": ["pytest", "pytest-xdist", "ruff==0.17.6", "nbclient", "nbformat", "ipykernel"],
  },
)
