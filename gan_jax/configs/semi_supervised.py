r"""The semi-supervised K+1 GAN with feature matching (Salimans et al. 2016, Sec. 5).

  python main.py --config=configs/semi_supervised.py --workdir=runs/semi_mnist
  python main.py --config=configs/semi_supervised.py:mnist --workdir=runs/semi_mnist_20 \
      --config.data.num_labels=20
  python main.py --config=configs/semi_supervised.py:mnist,supervised_only --workdir=runs/sup

Arguments (comma-separated): one of mnist (default), fashion_mnist, cifar10, svhn; optionally
supervised_only (D on L_supervised alone, the same labels: the baseline) and smoke (tiny, on
scikit-learn's digits unless a dataset is named).

Settings of the released code (openai/improved-gan, mnist_svhn_cifar10/train_*_feature_
matching.py): batch 100 (labelled and unlabelled), Adam(β1 0.5) with ε inside the square
root, lr 0.003 for MNIST (constant, 300 epochs), 0.0003 for CIFAR-10 (1200 epochs, linear
decay to 0 over the last 400) and SVHN (900 epochs, decay over the last 300); 100 / 4000 /
1000 labels; L_unsupervised with weights 1/2; G by feature matching of D's last hidden layer
on a second unlabelled batch (mean squared difference for MNIST, mean absolute difference
for CIFAR-10 and SVHN); test error with a running average of D's parameters (rate 1e-4);
data-dependent weight-norm initialisation on 500 training images.

Differences from the released code:
- Images are in [-1, 1] as everywhere in the library; the MNIST nets map them to the released
  code's [0, 1] inside (D's input, G's sigmoid output), so the networks compute the same.
- The data-dependent init uses the first 500 training images in index order (the released
  code: the first 500 of a random permutation for MNIST, of the repeated labelled set for
  CIFAR-10/SVHN); its pass has D's noise and dropout on, as there.
- The average of D starts at the initial parameters (there: at zero). With weight
  normalisation the directions of a zero-started average are those of the bias-corrected one,
  so the two differ in the test errors of the first ~80 epochs (the initial weights weigh
  0.9999^t in this one: 0.55 at epoch 10, 0.17 at epoch 30, < 0.01 from epoch 80; the zero
  start shrinks the biases by 1 − 0.9999^t instead); eval.classifier_params=current evaluates
  the current parameters, and both errors are logged (eval/test_error_ema,
  eval/test_error_current).
- The CIFAR-10/SVHN learning rate decays per step instead of per epoch.
- The labelled subset and all orders are drawn with numpy's default_rng from config.seed (the
  released code: RandomState(seed_data) for the subset); the selection rule is the same.
- G's batch-norm running variance is the biased one (only inference-mode sample grids use
  it; they sample G in inference mode, the released code in training mode).
- Noise z, Gaussian noise and dropout are JAX draws, one key per pass.
"""

import ml_collections

from gan_jax.configs import presets
from gan_jax.configs.dcgan import optimizer

# Training-set sizes, for epochs -> steps (train.steps = epochs · n // batch).
TRAIN_EXAMPLES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "svhn": 73_257}
DATASET_ARGS = ("mnist", "fashion_mnist", "cifar10", "svhn")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  tokens = [t for t in (arg or "").split(",") if t]
  unknown = set(tokens) - set(DATASET_ARGS) - {"smoke", "supervised_only"}
  datasets = [t for t in tokens if t in DATASET_ARGS]
  if unknown or len(datasets) > 1:
    raise ValueError(
      f"invalid config argument {arg!r}; valid: one of {', '.join(DATASET_ARGS)}, "
      "supervised_only, smoke"
    )
  dataset = datasets[0] if datasets else "mnist"

  config = ml_collections.ConfigDict()
  config.game = "semi_supervised"  # The K+1 classifier GAN (gan_jax.games.semi_supervised).
  config.seed = 0  # Seeds initialisation, noise, data order and the labelled subset.

  config.data = presets.data_config(
    {"mnist": "mnist_idx", "fashion_mnist": "fashion_mnist"}.get(dataset, dataset)
  )
  config.data.num_labels = 100  # N labelled examples, N/K per class (the paper's 20 ... 4000).

  config.model = ml_collections.ConfigDict()
  config.model.name = "semi_mlp"  # semi_mlp (MNIST MLPs) or semi_conv (CIFAR-10/SVHN convs).
  config.model.num_classes = 10  # K, the classifier's classes (the fake class is extra).
  config.model.z_dim = 100  # Noise dimension.
  config.model.z_dist = "uniform01"  # U[0, 1] as the released code; uniform U[-1, 1]; normal.
  config.model.bn_momentum = 0.9  # Running-average momentum of G's batch norm.
  config.model.discriminator_hidden = (1000, 500, 250, 250, 250)  # semi_mlp: D's widths.
  config.model.generator_hidden = (500, 500)  # semi_mlp: G's hidden widths.
  config.model.input_noise = 0.3  # semi_mlp: σ of Gaussian noise on D's [0, 1] input.
  config.model.hidden_noise = 0.5  # semi_mlp: σ of Gaussian noise after D's hidden layers.
  config.model.discriminator_widths = (96, 192)  # semi_conv: D's channels per block.
  config.model.generator_widths = (512, 256, 128)  # semi_conv: G's projection and up-convs.
  config.model.input_dropout = 0.2  # semi_conv: dropout rate on D's input.
  config.model.hidden_dropout = 0.5  # semi_conv: dropout rate after D's blocks.

  config.semi = ml_collections.ConfigDict()
  config.semi.unsupervised_weight = 1.0  # w in L_sup + w·L_unsup; 0 = supervised baseline.
  config.semi.half_weights = True  # L_unsup's halves weighted 1/2 (released code), else 1.
  # G's loss: feature matching distance, mean_squared (MNIST code), mean_abs (CIFAR/SVHN
  # code) or squared_l2 (the paper's ‖·‖²).
  config.semi.feature_distance = "mean_squared"
  config.semi.generator_batch = "separate"  # G matches a 2nd unlabelled batch, or "shared".
  config.semi.init_examples = 500  # Training images for weight norm's data-dependent init.

  lr = 0.003 if dataset in ("mnist", "fashion_mnist") else 0.0003
  config.optim = ml_collections.ConfigDict()
  config.optim.generator = _adam(lr)  # G's optimiser.
  config.optim.discriminator = _adam(lr)  # D's optimiser.

  epochs = {"mnist": 300, "fashion_mnist": 300, "cifar10": 1200, "svhn": 900}[dataset]
  per_epoch = TRAIN_EXAMPLES[dataset] // 100
  config.train = ml_collections.ConfigDict()
  config.train.steps = epochs * per_epoch  # Iterations: the released code's epochs · n / B.
  config.train.batch_size = 100  # Global batch size of each of the three batches.
  config.train.n_critic = 1  # D updates per iteration (one, then one G update).
  config.train.ema_decay = 0.9999  # EMA of D's weights (the released code's rate 1e-4).
  config.train.devices = 0  # Devices to run data-parallel on (0 = all).
  config.train.compute_dtype = "float32"  # Activations: float32 or bfloat16 (docs/precision.md).
  config.train.cpu_convolutions = "eigen"  # Convolutions on CPU: eigen or ynnpack (xla_cpu.py).
  config.train.log_every = per_epoch  # Steps between metric logs (one epoch).
  config.train.sample_every = 10 * per_epoch  # Steps between sample grids.
  config.train.num_samples = 100  # Images in a sample grid.
  config.train.checkpoint_every = 10 * per_epoch  # Steps between checkpoints.
  config.train.keep_checkpoints = 3  # Checkpoints kept.
  config.train.prefetch = 2  # Iterations of data prepared ahead on the host.

  config.eval = presets.eval_config()
  config.eval.every = per_epoch  # Steps between test-error evaluations (one epoch).
  config.eval.metrics = "test_error"  # The classifier's error on the whole test split.
  config.eval.best_metric = ""  # Keep no best checkpoint (it would select on the test set).
  config.eval.batch_size = 1000  # Test images per classifier call.
  config.eval.classifier_params = "ema"  # Test error with the EMA of D (released code).

  if dataset in ("mnist", "fashion_mnist"):
    # The MLPs see 28x28 images, not padded to 32x32.
    config.data.image_size = 28
  else:
    config.model.name = "semi_conv"
    config.semi.feature_distance = "mean_abs"
    config.data.num_labels = 4000 if dataset == "cifar10" else 1000
    if dataset == "svhn":
      config.model.discriminator_widths = (64, 128)
    # lr · min(3 - epoch / (E/3), 1): constant, then linear to 0 over the last third.
    for name in ("generator", "discriminator"):
      config.optim[name].lr_decay_start = (2 * epochs // 3) * per_epoch
      config.optim[name].lr_decay_end = config.train.steps

  if "supervised_only" in tokens:
    config.semi.unsupervised_weight = 0.0
  if "smoke" in tokens:
    _shrink_for_smoke_test(config, keep_data=bool(datasets))
  return config


def _adam(lr: float) -> ml_collections.ConfigDict:
  cfg = optimizer("adam", lr, b1=0.5)
  cfg.eps = 0.0  # The released code's Adam: ε = 1e-8 inside the square root instead.
  cfg.eps_root = 1e-8  # ε inside the square root of Adam's second moment.
  cfg.lr_decay_start = 0  # Update from which lr falls linearly (0 = constant lr).
  cfg.lr_decay_end = 0  # Update at which lr reaches 0.
  return cfg


def _shrink_for_smoke_test(config: ml_collections.ConfigDict, keep_data: bool) -> None:
  """Tiny networks, batches and step counts: a complete run in seconds on a CPU."""
  if not keep_data:
    config.data.update(presets.DATASETS["digits"])
  config.data.image_size = 16
  config.data.num_examples = 256
  config.data.num_labels = 20
  config.model.z_dim = 16
  config.model.discriminator_hidden = (32, 16)
  config.model.generator_hidden = (32,)
  config.model.discriminator_widths = (8, 8)
  config.model.generator_widths = (16, 8, 8)
  config.semi.init_examples = 64
  config.train.steps = 6
  config.train.batch_size = 8
  config.train.log_every = 2
  config.train.sample_every = 3
  config.train.checkpoint_every = 3
  config.train.num_samples = 16
  config.eval.every = 0
  config.eval.batch_size = 100
  for name in ("generator", "discriminator"):
    if config.optim[name].lr_decay_start:
      config.optim[name].lr_decay_start = 3
      config.optim[name].lr_decay_end = 6
