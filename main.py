r"""Trains a GAN.

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan
  python main.py --config=configs/wgan_gp.py:cifar10 --workdir=runs/wgan_gp \
      --config.train.steps=100000
"""

import logging

import jax
from absl import app, flags
from ml_collections import config_flags

from gan_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and samples.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host).")
config_flags.DEFINE_config_file("config", "configs/wgan_gp_lens.py", "Training config file.",
                                lock_config=True)
flags.mark_flags_as_required(["workdir"])


class _QuietLibraries(logging.Filter):
  """Drops INFO records of checkpointing internals, which would bury the progress lines."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
  if FLAGS.distributed:
    jax.distributed.initialize()
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
