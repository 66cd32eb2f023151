r"""DCGAN with the Improved Techniques of Salimans et al. 2016 (docs/improved.md).

  python main.py --config=configs/improved_gan.py --workdir=runs/improved
  python main.py --config=configs/improved_gan.py:cifar10 --workdir=runs/improved_cifar

Each technique is switched by one field: feature matching and historical averaging by their
names in `stabilisers`, minibatch discrimination by `model.minibatch_kernels` (0 = off),
one-sided label smoothing by `objective.real_label` (1 = off), virtual batch normalisation
in G by `model.generator_norm` ("batch" = off).
"""

from gan_jax.configs import dcgan


def get_config(arg=None):
  config = dcgan.get_config(arg)
  # Sec. 3.1 and 3.3. Feature matching is added to G's non-saturating loss here: with
  # minibatch discrimination the paper's image samples come from G's adversarial loss.
  config.stabilisers = "feature_matching,historical_averaging"
  config.feature_matching.replace_adversarial = False
  # Sec. 3.2, with the released code's B = 100 kernels of dimension C = 5, j = i left out.
  config.model.minibatch_kernels = 100
  # Sec. 3.4: real targets 0.9, fake targets 0.
  config.objective.real_label = 0.9
  # Sec. 3.5: VBN in G, with a reference noise batch of train.batch_size.
  config.model.generator_norm = "virtual_batch"
  return config
