r"""Trains a GAN: `python main.py` in a checkout, `gan-jax-train` when installed.

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan
  gan-jax-train --config=wgan_gp_lens:smoke --workdir=runs/smoke
  python main.py --config=configs/wgan_gp.py:cifar10 --workdir=runs/wgan_gp \
      --config.train.steps=100000 --plugins=my_objectives
"""

from __future__ import annotations

import logging
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from gan_jax import configs, train
from gan_jax.cli import import_plugins

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and samples.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host).")
flags.DEFINE_list(
  "plugins",
  [],
  "Modules to import before the config is read (they register "
  "objectives, models, stabilisers, ...).",
)
config_flags.DEFINE_config_file(
  "config",
  "configs/wgan_gp_lens.py",
  "Training config: a file (configs/<name>.py[:<arg>]) or, "
  "installed, a config name (<name>[:<arg>]).",
  lock_config=True,
)
flags.mark_flags_as_required(["workdir"])


class _QuietLibraries(logging.Filter):
  """Drops INFO records of checkpointing internals, which would bury the progress lines."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def resolve_config_arg(argv: list[str]) -> list[str]:
  """Rewrites --config=<name>[:<arg>] to the shipped config file when no such file exists."""
  out = []
  for a in argv:
    if a.startswith("--config="):
      value = a[len("--config=") :]
      file, _, arg = value.partition(":")
      if (
        not os.path.exists(file)
        and "/" not in file
        and not file.endswith(".py")
        and file in configs.names()
      ):
        a = "--config=" + configs.path(file) + (f":{arg}" if arg else "")
    out.append(a)
  return out


def _import_plugins(modules: str | list[str] | None) -> list[str]:
  """import_plugins, exiting with code 2 and a one-line `error: ...` when one is missing."""
  try:
    return import_plugins(modules)
  except ImportError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
  # A config may name plug-ins itself (top-level field `plugins`, a list or comma-separated).
  named = _import_plugins(FLAGS.config.get("plugins"))
  plugins = list(dict.fromkeys(named + _import_plugins(FLAGS.plugins)))
  if plugins != named:
    # Recorded in config.json, so that an evaluation or a resume of the run imports them too.
    with FLAGS.config.unlocked():
      if "plugins" in FLAGS.config:
        del FLAGS.config["plugins"]
      FLAGS.config.plugins = ",".join(plugins)
  if FLAGS.distributed:
    jax.distributed.initialize()
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def run():
  """The console entry point."""
  # Plug-ins must be importable before absl parses the config file, which may import them.
  for a in sys.argv:
    if a.startswith("--plugins="):
      _import_plugins(a.split("=", 1)[1])
  app.run(main, argv=resolve_config_arg(sys.argv))
