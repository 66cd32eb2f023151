r"""Exports generated images of a trained run and prints one JSON line.

  python -m gan_jax.cli.sample --workdir=runs/dcgan --num=10000 --out=samples.npz
  python -m gan_jax.cli.sample --workdir=runs/dcgan --checkpoint=best --num=64 --out=grid.png
  python -m gan_jax.cli.sample --workdir=runs/dcgan --num=1000 --out=samples/   # PNG files

--out decides the format: `.npz`, uint8 "images" (N, H, W, C), which
`python -m gan_jax.cli.evaluate --images=...` reads; `.png`, one grid of all images; anything
else, a folder of PNG files 0000000.png, 0000001.png, ...

The images are G's samples (with the EMA of G where the run keeps one) for the evaluation's
fixed noise of --seed (default: the run's seed), so the first n of them are the images that
`gan_jax.cli.evaluate --workdir` scores for --num_samples=n. A translation run (CycleGAN)
is refused: it maps images of one domain to the other and has no noise to sample from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from absl import flags, logging

from gan_jax import cli as cli_lib
from gan_jax import images as images_lib
from gan_jax import sampling
from gan_jax.cli import evaluate as evaluate_cli
from gan_jax.core.registry import ConfigError

# This tool's own flag set (cli_lib explains why).
FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "run folder (config.json, checkpoints/)", flag_values=FLAGS)
flags.DEFINE_string("checkpoint", "latest", "latest, best or a step number", flag_values=FLAGS)
flags.DEFINE_integer("num", 1000, "images to generate", flag_values=FLAGS)
flags.DEFINE_string(
  "out", None, "an .npz file, a .png grid, or a folder of PNG files", flag_values=FLAGS
)
flags.DEFINE_integer("seed", None, "seed of the noise (default: the run's)", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 500, "images per call of the generator", flag_values=FLAGS)
flags.DEFINE_list(
  "plugins",
  [],
  "modules to import before the run's config is read (those its config.json records are "
  "imported too)",
  flag_values=FLAGS,
)


def export_samples(
  workdir: str,
  out: str,
  num: int,
  checkpoint: str = "latest",
  seed: int | None = None,
  batch_size: int = 500,
) -> dict:
  """Generates `num` images from a run's checkpoint and writes them to `out`.

  Args:
    workdir: the run folder (config.json, checkpoints/, checkpoints_best/).
    out: a path ending in .npz (uint8 "images" (N, H, W, C)) or .png (one grid), else a
      folder of PNG files (created).
    num: the number of images.
    checkpoint: "latest", "best" or a step number.
    seed: the seed of the noise (default: the run's seed).
    batch_size: images per call of the generator.

  Returns:
    The JSON record: workdir, checkpoint, step, num and out.

  Raises:
    ValueError: `num` < 1, or the run's game translates rather than samples.
    FileNotFoundError, ConfigError, ImportError: as `gan_jax.cli.evaluate.load_run` and
      `restore_state`.
  """
  if num < 1:
    raise ValueError(f"--num={num}: need at least one image")
  config, spec = evaluate_cli.load_run(workdir)
  if hasattr(spec.game, "translate"):
    raise ValueError(
      f"{workdir} is a translation run (game {config.get('game')!r}): it has no samples of "
      "its own; gan_jax.cli.evaluate --workdir scores its translations"
    )
  state, step = evaluate_cli.restore_state(workdir, config, spec, checkpoint)
  sample_fn = sampling.make_sample_fn(
    spec, state, config.seed if seed is None else seed, batch_size=batch_size
  )
  images = images_lib.to_uint8(sample_fn(num))
  if out.endswith(".npz"):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    # Written whole and renamed, so an interrupted export leaves no truncated file.
    tmp = out[: -len(".npz")] + ".tmp.npz"
    np.savez(tmp, images=images)
    os.replace(tmp, out)
  elif out.lower().endswith(".png"):
    images_lib.save_png(out, images_lib.make_grid(images))
  else:
    for i, image in enumerate(images):
      images_lib.save_png(os.path.join(out, f"{i:07d}.png"), image)
  logging.info("wrote %d images of step %d to %s", num, step, out)
  return {"workdir": workdir, "checkpoint": checkpoint, "step": step, "num": num, "out": out}


def main(argv: Sequence[str]) -> None:
  """Exports what the parsed FLAGS name and prints the JSON record on stdout.

  Args:
    argv: the program name and the arguments that are not flags (there must be none).

  Raises:
    SystemExit: code 2, after `error: <message>` on stderr, for a missing flag, a run that
      cannot be restored or sampled, or a plug-in that cannot be imported.
  """
  if len(argv) > 1:
    cli_lib.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdir or not FLAGS.out:
    cli_lib.fail("pass --workdir=RUN and --out=FILE.npz, FILE.png or FOLDER")
  logging.set_verbosity(logging.INFO)
  try:
    cli_lib.import_plugins(FLAGS.plugins)
    record = export_samples(
      FLAGS.workdir, FLAGS.out, FLAGS.num, FLAGS.checkpoint, FLAGS.seed, FLAGS.batch_size
    )
  except (ConfigError, FileNotFoundError, ImportError, ValueError) as e:
    cli_lib.fail(str(e))
  print(json.dumps(record), flush=True)


def cli(argv: Sequence[str]) -> None:
  """Parses a command line (program name first, e.g. sys.argv) and runs `main`."""
  cli_lib.cli(main, FLAGS, argv)


def run() -> None:
  """The console entry point (gan-jax-sample)."""
  cli_lib.run_app(main, FLAGS, __doc__)


if __name__ == "__main__":
  run()
