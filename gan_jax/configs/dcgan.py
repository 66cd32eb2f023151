r"""DCGAN with the non-saturating loss (Radford et al. 2016; Goodfellow et al. 2014).

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan
  python main.py --config=configs/dcgan.py:stacked_fashion_mnist --workdir=runs/dcgan_stacked

Optimiser and initialisation are the DCGAN paper's (Adam 2e-4, β1 0.5; weights N(0, 0.02));
the networks are Tempered GAN's Fig. 3 at 32x32. The other DCGAN-family configs import this one.
"""

import ml_collections

from gan_jax.configs import presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds network initialisation, noise and data order.

  config.data = presets.data_config("fashion_mnist")

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"  # Network family (gan_jax.models.MODELS).
  config.model.width = 64  # C: G has 4C-2C-C channels, D has C-2C-4C (at 32x32).
  config.model.z_dim = 100  # Noise dimension.
  config.model.z_dist = "normal"  # normal N(0, I) or uniform U[-1, 1].
  config.model.init = "normal"  # normal N(0, 0.02) (DCGAN) or xavier (Tempered GAN).
  config.model.generator_norm = "batch"  # batch, layer, none or virtual_batch.
  # batch (DCGAN), layer, none (WGAN-GP critic) or virtual_batch.
  config.model.discriminator_norm = "batch"
  config.model.bn_momentum = 0.9  # BatchNorm running-average momentum (PyTorch's 0.1).
  # Salimans et al. 2016 (docs/improved.md). Minibatch discrimination before D's score layer:
  config.model.minibatch_kernels = 0  # B: kernels (0 = off; the released code uses 100).
  config.model.minibatch_kernel_dim = 5  # C: dimension of each kernel.
  config.model.minibatch_exclude_self = True  # Leave j = i out of o(x_i) (released code).
  # Virtual batch norm (generator_norm / discriminator_norm = virtual_batch):
  config.model.vbn_reference_size = 0  # R: reference batch size (0 = train.batch_size).

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "non_saturating"  # minimax, non_saturating, lsgan, wgan, wgan_gp.
  # D's real target α (minimax, non_saturating, lsgan); < 1 is one-sided label smoothing.
  config.objective.real_label = 1.0
  config.objective.gp_weight = 10.0  # λ_gp of WGAN-GP.
  config.objective.clip = 0.01  # Weight-clipping bound c of WGAN.

  config.optim = ml_collections.ConfigDict()
  config.optim.generator = optimizer("adam", 2e-4, b1=0.5)  # G's optimiser.
  config.optim.discriminator = optimizer("adam", 2e-4, b1=0.5)  # D's optimiser.
  config.optim.lens = optimizer("adam", 1e-4, b1=0.5)  # The lens' optimiser (Tempered GAN).

  # Stabilisers switched on, comma-separated, applied in order: lens, advas,
  # feature_matching, historical_averaging.
  config.stabilisers = ""
  config.lens = presets.lens_config()
  config.advas = presets.advas_config()
  config.feature_matching = presets.feature_matching_config()
  config.historical_averaging = presets.historical_averaging_config()

  config.train = ml_collections.ConfigDict()
  config.train.steps = 5000  # Training iterations (each: n_critic D updates, one G update).
  config.train.batch_size = 64  # Global batch size, split over all devices.
  config.train.n_critic = 1  # D updates per iteration.
  config.train.ema_decay = 0.0  # Decay of an EMA of G's weights (0 = no EMA).
  config.train.devices = 0  # Devices to run data-parallel on (0 = all).
  config.train.compute_dtype = "float32"  # Activations: float32 or bfloat16 (docs/precision.md).
  config.train.cpu_convolutions = "eigen"  # Convolutions on CPU: eigen or ynnpack (xla_cpu.py).
  # Periods in steps; 0 = only at the last step (as each also acts at the last step).
  config.train.log_every = 100  # Steps between metric logs.
  config.train.sample_every = 500  # Steps between sample grids (PNG + TensorBoard).
  config.train.num_samples = 64  # Images in a sample grid (from one fixed z).
  config.train.checkpoint_every = 1000  # Steps between checkpoints (and at the end).
  config.train.keep_checkpoints = 3  # Checkpoints kept.
  config.train.prefetch = 2  # Iterations of data prepared ahead on the host.

  config.eval = presets.eval_config()

  return presets.apply_args(config, arg)


def optimizer(
  name: str, learning_rate: float, b1: float = 0.9, b2: float = 0.999, decay: float = 0.99
) -> ml_collections.ConfigDict:
  """An optimiser section; fields that the chosen optimiser does not use are ignored."""
  cfg = ml_collections.ConfigDict()
  cfg.name = name  # adam, rmsprop or sgd.
  cfg.learning_rate = learning_rate  # Step size.
  cfg.b1 = b1  # Adam β1.
  cfg.b2 = b2  # Adam β2.
  cfg.eps = 1e-8  # Adam / RMSProp ε.
  cfg.decay = decay  # RMSProp decay (PyTorch's alpha).
  cfg.momentum = 0.0  # SGD momentum.
  return cfg
