r"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017).

  python main.py --config=configs/cyclegan.py --workdir=runs/digits_mnist
  python main.py --config=configs/cyclegan.py:digits_mnist,shared_encoder --workdir=runs/shared
  python main.py --config=configs/cyclegan.py:horse2zebra --workdir=runs/horse2zebra \
    --config.data.path=DIR
  python main.py --config=configs/cyclegan.py:smoke --workdir=/tmp/cyclegan_smoke

Arguments (comma-separated): one pair, digits_mnist (default: scikit-learn's 8x8 digits
upscaled to 32x32 as X, MNIST IDX files padded to 32x32 as Y; offline) or a TFDS
`cycle_gan/<pair>` dataset (horse2zebra, apple2orange, summer2winter_yosemite, monet2photo,
cezanne2photo, ukiyoe2photo, vangogh2photo, maps, cityscapes, facades, iphone2dslr_flower;
trainA/testA as X, trainB/testB as Y; prepared in ArrayRecord format beforehand, e.g.
`tfds build cycle_gan/horse2zebra --file_format=array_record --data_dir=DIR`, as
data.source='tfds' never downloads); shared_encoder (one encoder for both directions, a decoder
per domain); smoke (tiny networks, a few steps, on the chosen pair).

Settings of the paper and the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
`--model cycle_gan`): LSGAN objective, λ_cyc = 10, identity weight 0.5 (relative to λ_cyc; 0
turns it off), a pool of 50 fakes per direction, Adam(2e-4, β1 0.5) for all four networks,
constant for the first half of training and then linearly to 0, batch 1, ResNet generator (9
blocks at 256 px, 6 at 128 px) of width 64, 70x70 PatchGAN of width 64, 200 epochs (100
constant + 100 decaying) of max(|A|, |B|) iterations, training images resized to 286x286,
randomly cropped to 256x256 and randomly flipped. The TFDS pairs use all of these at 256 px.
digits_mnist, at 32 px: 6 blocks of width 32, a 34x34 PatchGAN (2 stride-2 layers) of width
32, batch 16, 20k steps, no identity loss and no jitter.

Differences from the reference: the learning rate falls per step rather than per epoch;
the pool's random choices, the data orders, crops and flips are JAX and numpy draws from
config.seed; the reference draws Y's image at random each iteration, here Y has its own
per-epoch order.
"""

import ml_collections

from gan_jax.configs import presets
from gan_jax.configs.dcgan import optimizer

# Epochs of the TFDS pairs (the reference's --n_epochs 100 --n_epochs_decay 100).
EPOCHS_CONSTANT, EPOCHS_DECAY = 100, 100


def _cycle_gan(pair: str, train_a: int, train_b: int) -> dict:
  """The TFDS dataset cycle_gan/<pair>: trainA/testA as X, trainB/testB as Y, at 256 px.

  train_a and train_b are the sizes of trainA and trainB: the training length is counted in
  epochs of max(train_a, train_b) iterations, and the config is built without reading data.
  """
  domain = dict(source="tfds", name=f"cycle_gan/{pair}", resize="resize")
  return dict(
    domain_x=dict(domain, train_split="trainA", test_split="testA"),
    domain_y=dict(domain, train_split="trainB", test_split="testB"),
    image_size=256,
    channels=3,
    load_size=286,
    flip=True,
    train_examples=(train_a, train_b),
    scale="paper",
    classifiers=("", ""),
  )


# Domain pairs: the fields of data.domain_x and data.domain_y, the shared image format and
# jitter, the sizes of the two training sets (None: a fixed step count), the scale of the
# networks and training (SCALES) and the dataset classifiers that judge translations into X
# and Y ("": Inception FID; gan_jax.evaluation.translation).
PAIRS = {
  "digits_mnist": dict(
    # path "" (the default search) is there so that it can be set on the command line.
    domain_x=dict(source="digits", name="digits", path="", resize="resize"),
    domain_y=dict(source="idx", name="mnist", path="", resize="pad"),
    image_size=32,
    channels=1,
    load_size=0,
    flip=False,
    train_examples=None,
    scale="small",
    classifiers=("digits32", "mnist"),
  ),
  # Sizes of trainA and trainB: the split metadata TFDS records for cycle_gan version 3.0.0
  # (tensorflow/datasets, tensorflow_datasets/testing/metadata/cycle_gan/<pair>/3.0.0/
  # dataset_info.json), which are the file counts of the reference's zip archives.
  "horse2zebra": _cycle_gan("horse2zebra", 1067, 1334),
  "apple2orange": _cycle_gan("apple2orange", 995, 1019),
  "summer2winter_yosemite": _cycle_gan("summer2winter_yosemite", 1231, 962),
  "monet2photo": _cycle_gan("monet2photo", 1072, 6287),
  "cezanne2photo": _cycle_gan("cezanne2photo", 525, 6287),
  "ukiyoe2photo": _cycle_gan("ukiyoe2photo", 562, 6287),
  "vangogh2photo": _cycle_gan("vangogh2photo", 400, 6287),
  "maps": _cycle_gan("maps", 1096, 1096),
  # TFDS removed this config in cycle_gan 3.0.0 (licence); TFDS still reads a copy prepared
  # by an earlier release (version 2.0.0, whose metadata gives these sizes) from data.path.
  "cityscapes": _cycle_gan("cityscapes", 2975, 2975),
  "facades": _cycle_gan("facades", 400, 400),
  "iphone2dslr_flower": _cycle_gan("iphone2dslr_flower", 1812, 3325),
}
# Networks and batch: the paper's at 256 px, and a smaller setting for 32 px digits.
SCALES = {
  "paper": dict(
    width=64,
    n_blocks=9,
    discriminator_width=64,
    discriminator_layers=3,
    identity_weight=0.5,
    batch_size=1,
  ),
  "small": dict(
    width=32,
    n_blocks=6,
    discriminator_width=32,
    discriminator_layers=2,
    identity_weight=0.0,
    batch_size=16,
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
  pair_name = pairs[0] if pairs else "digits_mnist"
  pair = PAIRS[pair_name]
  scale = SCALES[pair["scale"]]
  # The reference's epoch: max(|A|, |B|) iterations (its UnalignedDataset's length).
  per_epoch = max(pair["train_examples"]) // scale["batch_size"] if pair["train_examples"] else 0

  config = ml_collections.ConfigDict()
  config.game = "cyclegan"  # Unpaired translation (gan_jax.games.cyclegan).
  config.seed = 0  # Seeds initialisation, the pool's choices, data orders, crops and flips.

  config.data = presets.data_config("digits")
  config.data.source = "unpaired"  # Two domains, data.domain_x and data.domain_y.
  config.data.name = pair_name  # The pair's name (logs only).
  config.data.image_size = pair["image_size"]  # Height and width of both domains.
  config.data.channels = pair["channels"]  # Channels of both domains.
  config.data.load_size = pair["load_size"]  # Train at random image_size crops of this (0: none).
  config.data.flip = pair["flip"]  # Flip training images left-right at random.
  config.data.domain_x = ml_collections.ConfigDict(pair["domain_x"])  # X's source fields.
  config.data.domain_y = ml_collections.ConfigDict(pair["domain_y"])  # Y's source fields.

  config.model = ml_collections.ConfigDict()
  config.model.name = "cyclegan_resnet"  # ResNet generators, PatchGAN discriminators.
  config.model.width = scale["width"]  # Generator's first conv filters (ngf; 64 in the paper).
  config.model.n_blocks = scale["n_blocks"]  # Residual blocks (6 at 128 px, 9 at 256 px).
  config.model.discriminator_width = scale["discriminator_width"]  # PatchGAN's (ndf; 64).
  config.model.discriminator_layers = scale["discriminator_layers"]  # 3 = 70x70, 2 = 34x34.
  config.model.shared_encoder = "shared_encoder" in tokens  # One encoder for G and F.

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "lsgan"  # Adversarial objective per direction (LSGAN in the paper).
  config.objective.real_label = 1.0  # Real target (minimax/lsgan); < 1 smooths it.
  config.objective.clip = 0.01  # wgan only: weight clipping of both critics.
  config.objective.gp_weight = 10.0  # wgan_gp only: gradient penalty weight.

  config.cycle = ml_collections.ConfigDict()
  config.cycle.weight = 10.0  # λ_cyc, weight of the cycle-consistency loss.
  config.cycle.identity_weight = scale["identity_weight"]  # Relative to λ_cyc (0 = off).
  config.cycle.pool_size = 50  # Fakes kept per direction for D (0 = no pool).
  config.cycle.sample_split = "test"  # Split of the fixed images in the sample grids.

  config.train = ml_collections.ConfigDict()
  config.train.steps = (EPOCHS_CONSTANT + EPOCHS_DECAY) * per_epoch or 20_000  # Iterations.
  config.train.batch_size = scale["batch_size"]  # Global batch size of each domain.
  config.train.n_critic = 1  # D updates per iteration (one, after the generators').
  config.train.ema_decay = 0.0  # No parameter EMA (the reference keeps none).
  config.train.devices = 0  # Devices to run data-parallel on (0 = all).
  config.train.compute_dtype = "float32"  # Activations: float32 or bfloat16 (docs/precision.md).
  config.train.cpu_convolutions = "eigen"  # Convolutions on CPU: eigen or ynnpack (xla_cpu.py).
  config.train.log_every = 100  # Steps between metric logs.
  config.train.sample_every = per_epoch or 1000  # Steps between sample grids (TFDS: 1 epoch).
  config.train.num_samples = 16  # Images of each domain in a sample grid.
  config.train.checkpoint_every = 5 * per_epoch or 2000  # Steps between checkpoints (5 epochs).
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
  config.eval.every = 10 * per_epoch or 5000  # Steps between evaluations (TFDS: 10 epochs).
  # Both directions' label preservation and classifier FID (gan_jax.evaluation.translation);
  # Inception FID for domains without a classifier.
  config.eval.metrics = "translation"
  config.eval.num_samples = 2000  # Test images translated per direction (all if fewer).
  config.eval.reference_split = "test"  # The target domain's real images: its test split,
  config.eval.reference_samples = 0  # all of it.
  config.eval.best_metric = ""  # No best checkpoint.
  config.eval.classifier_x = pair["classifiers"][0]  # Judge of X's images (digits32 at 32 px).
  config.eval.classifier_y = pair["classifiers"][1]  # Judge of Y's images ("": Inception).

  if "smoke" in tokens:
    _shrink_for_smoke_test(config)
  return config


def _shrink_for_smoke_test(config: ml_collections.ConfigDict) -> None:
  """Tiny networks, batches and step counts: a complete run in seconds on a CPU."""
  config.data.image_size = 16
  if config.data.load_size:
    config.data.load_size = 18  # About the reference's 286 / 256.
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
