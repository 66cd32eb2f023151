r"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017).

  python main.py --config=configs/cyclegan.py --workdir=runs/digits_mnist
  python main.py --config=configs/cyclegan.py:digits_mnist,shared_encoder --workdir=runs/shared
  python main.py --config=configs/cyclegan.py:smoke --workdir=/tmp/cyclegan_smoke

Arguments (comma-separated): digits_mnist (default: scikit-learn's 8x8 digits upscaled to
32x32 as X, MNIST IDX files padded to 32x32 as Y; offline); shared_encoder (one encoder for
both directions, a decoder per domain); smoke (tiny networks, a few steps, on the same pair).

Settings of the paper and the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
`--model cycle_gan`): LSGAN objective, λ_cyc = 10, identity weight 0.5 (relative to λ_cyc, for
photo <-> painting; 0 turns it off), a pool of 50 fakes per direction, Adam(2e-4, β1 0.5) for
all four networks, constant for the first half of training and then linearly to 0, batch 1,
ResNet generator (9 blocks at 256 px, 6 at 128 px), 70x70 PatchGAN. Here, at 32 px: 6 blocks
of width 32, a 34x34 PatchGAN (2 stride-2 layers) of width 32, batch 16 and 20k steps.

Differences from the reference: the learning rate falls per step rather than per epoch;
the pool's random choices and the data orders are JAX and numpy draws from config.seed.
"""

import ml_collections

from gan_jax.configs import presets
from gan_jax.configs.dcgan import optimizer

# Domain pairs: the fields of data.domain_x and data.domain_y, and the shared image format.
PAIRS = {
  "digits_mnist": dict(
    domain_x=dict(source="digits", name="digits", resize="resize"),
    domain_y=dict(source="idx", name="mnist", resize="pad"),
    image_size=32,
    channels=1,
  ),
}
NETWORKS = (
  "generator_xy",
  "generator_yx",
  "encoder",
  "decoder_x",
  "decoder_y",
  "discriminator_x",
  "discriminator_y",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  tokens = [t for t in (arg or "").split(",") if t]
  unknown = set(tokens) - set(PAIRS) - {"smoke", "shared_encoder"}
  pairs = [t for t in tokens if t in PAIRS]
  if unknown or len(pairs) > 1:
    raise ValueError(
      f"invalid config argument {arg!r}; valid: one of {', '.join(PAIRS)}, shared_encoder, smoke"
    )
  pair = PAIRS[pairs[0] if pairs else "digits_mnist"]

  config = ml_collections.ConfigDict()
  config.game = "cyclegan"  # Unpaired translation (gan_jax.games.cyclegan).
  config.seed = 0  # Seeds initialisation, the pool's choices and the data orders.

  config.data = presets.data_config("digits")
  config.data.source = "unpaired"  # Two domains, data.domain_x and data.domain_y.
  config.data.name = "digits_mnist"  # The pair's name (logs only).
  config.data.image_size = pair["image_size"]  # Height and width of both domains.
  config.data.channels = pair["channels"]  # Channels of both domains.
  config.data.domain_x = ml_collections.ConfigDict(pair["domain_x"])  # X's source fields.
  config.data.domain_y = ml_collections.ConfigDict(pair["domain_y"])  # Y's source fields.

  config.model = ml_collections.ConfigDict()
  config.model.name = "cyclegan_resnet"  # ResNet generators, PatchGAN discriminators.
  config.model.width = 32  # Generator's first conv filters (ngf; 64 in the paper).
  config.model.n_blocks = 6  # Residual blocks (6 at 128 px, 9 at 256 px in the paper).
  config.model.discriminator_width = 32  # PatchGAN's first conv filters (ndf; 64).
  config.model.discriminator_layers = 2  # Stride-2 convs: 3 = 70x70 PatchGAN, 2 = 34x34.
  config.model.shared_encoder = "shared_encoder" in tokens  # One encoder for G and F.

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "lsgan"  # Adversarial objective per direction (LSGAN in the paper).
  config.objective.real_label = 1.0  # Real target (minimax/lsgan); < 1 smooths it.
  config.objective.clip = 0.01  # wgan only: weight clipping of both critics.
  config.objective.gp_weight = 10.0  # wgan_gp only: gradient penalty weight.

  config.cycle = ml_collections.ConfigDict()
  config.cycle.weight = 10.0  # λ_cyc, weight of the cycle-consistency loss.
  config.cycle.identity_weight = 0.0  # Identity loss weight relative to λ_cyc (0 = off).
  config.cycle.pool_size = 50  # Fakes kept per direction for D (0 = no pool).
  config.cycle.sample_split = "test"  # Split of the fixed images in the sample grids.

  config.train = ml_collections.ConfigDict()
  config.train.steps = 20_000  # Iterations.
  config.train.batch_size = 16  # Global batch size of each domain.
  config.train.n_critic = 1  # D updates per iteration (one, after the generators').
  config.train.ema_decay = 0.0  # No parameter EMA (the reference keeps none).
  config.train.devices = 0  # Devices to run data-parallel on (0 = all).
  config.train.log_every = 100  # Steps between metric logs.
  config.train.sample_every = 1000  # Steps between sample grids.
  config.train.num_samples = 16  # Images of each domain in a sample grid.
  config.train.checkpoint_every = 2000  # Steps between checkpoints.
  config.train.keep_checkpoints = 3  # Checkpoints kept.
  config.train.prefetch = 2  # Iterations of data prepared ahead on the host.

  config.optim = ml_collections.ConfigDict()
  # The schedule follows train.steps (set on the command line or below): references to it.
  steps = config.train.get_ref("steps")
  for name in NETWORKS:
    # Adam(2e-4, β1 0.5); constant for half of training, then linearly to 0. Only the
    # networks of the chosen variant are built.
    config.optim[name] = optimizer("adam", 2e-4, b1=0.5)
    config.optim[name].lr_decay_start = steps // 2  # Update from which lr falls linearly.
    config.optim[name].lr_decay_end = steps * 1  # Update at which lr reaches 0 (own field).

  config.eval = presets.eval_config()
  config.eval.every = 5000  # Steps between evaluations of both directions.
  # Both directions' label preservation and classifier FID (gan_jax.evaluation.translation);
  # Inception FID for domains without a classifier.
  config.eval.metrics = "translation"
  config.eval.num_samples = 2000  # Test images translated per direction (all if fewer).
  config.eval.reference_split = "test"  # The target domain's real images: its test split,
  config.eval.reference_samples = 0  # all of it.
  config.eval.best_metric = ""  # No best checkpoint.
  config.eval.classifier_x = "digits32"  # Judge of domain X's images (digits at 32x32).
  config.eval.classifier_y = "mnist"  # Judge of domain Y's images.

  if "smoke" in tokens:
    _shrink_for_smoke_test(config)
  return config


def _shrink_for_smoke_test(config: ml_collections.ConfigDict) -> None:
  """Tiny networks, batches and step counts: a complete run in seconds on a CPU."""
  config.data.image_size = 16
  config.data.domain_x.num_examples = 256
  config.data.domain_y.num_examples = 256
  config.model.width = 4
  config.model.n_blocks = 2
  config.model.discriminator_width = 4
  config.model.discriminator_layers = 1
  config.cycle.pool_size = 10
  config.cycle.identity_weight = 0.5
  config.train.steps = 6
  config.train.batch_size = 4
  config.train.log_every = 2
  config.train.sample_every = 3
  config.train.checkpoint_every = 3
  config.train.num_samples = 8
  config.eval.every = 0
