r"""Evaluates a trained run, or any images, and prints one JSON line.

A run's checkpoint (latest, best, or a step), against the run's own data:

  python -m gan_jax.cli.evaluate --workdir=runs/dcgan
  python -m gan_jax.cli.evaluate --workdir=runs/dcgan --checkpoint=best --metrics=fid,kid
  python -m gan_jax.cli.evaluate --workdir=runs/cyclegan     # translation metrics
  python -m gan_jax.cli.evaluate --workdir=runs/semi         # the classifier's test error
  python -m gan_jax.cli.evaluate --workdir=runs/semi --confusion   # ... and which classes

Images from any model (a folder of PNG/JPEG/... files or an .npz with uint8 "images"),
against a dataset (`SOURCE:NAME`, e.g. idx:fashion_mnist, tfds:cifar10, digits) or against
another folder/.npz of real images:

  python -m gan_jax.cli.evaluate --images=samples.npz --reference=idx:fashion_mnist \
      --metrics=fid,kid,precision_recall

With --images, all the images are scored (or the first --num_samples), against as many real
images as are scored (or --reference_samples). Samples of a run to score elsewhere:
`python -m gan_jax.cli.sample`.

Metric options default to the run's `eval` config section (configs/presets.py eval_config());
flags override them. A run trained with plug-ins (main.py --plugins=...) records them in its
config.json, and they are imported again; --plugins=module[,module] adds others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import flags, logging

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import cli as cli_lib
from gan_jax import data as data_lib
from gan_jax import evaluation, sampling
from gan_jax import spec as spec_lib
from gan_jax import train as train_lib
from gan_jax.core.registry import ConfigError

# `eval` fields that command-line flags override.
OVERRIDABLE = (
  "metrics",
  "num_samples",
  "reference_samples",
  "reference_split",
  "batch_size",
  "inception_weights",
)

# This tool's own flag set: --workdir and --plugins are also flags of gan_jax.cli.train, and
# absl's global set refuses a name defined twice.
FLAGS = flags.FlagValues()
flags.DEFINE_string("workdir", None, "run folder (config.json, checkpoints/)", flag_values=FLAGS)
flags.DEFINE_string("checkpoint", "latest", "latest, best, or a step number", flag_values=FLAGS)
flags.DEFINE_string(
  "images", None, "folder or .npz of images to evaluate instead of a run", flag_values=FLAGS
)
flags.DEFINE_string(
  "reference",
  None,
  "real data for --images: SOURCE:NAME "
  "(idx:fashion_mnist, tfds:cifar10, digits, ...) or a folder/.npz",
  flag_values=FLAGS,
)
flags.DEFINE_enum(
  "reference_resize",
  "pad",
  data_lib.sources.RESIZE_MODES,
  "how --reference images are fitted to the evaluated size",
  flag_values=FLAGS,
)
flags.DEFINE_bool("stacked", False, "stack --reference into RGB (Stacked MNIST)", flag_values=FLAGS)
flags.DEFINE_string(
  "metrics",
  None,
  "comma-separated metrics; valid: " + ", ".join(evaluation.METRICS),
  flag_values=FLAGS,
)
flags.DEFINE_integer(
  "num_samples", None, "generated images to evaluate (--images: default all)", flag_values=FLAGS
)
flags.DEFINE_integer(
  "reference_samples",
  None,
  "real images for the reference statistics (--images: default as many as are evaluated)",
  flag_values=FLAGS,
)
flags.DEFINE_enum(
  "reference_split", None, ("train", "test"), "split of the reference data", flag_values=FLAGS
)
flags.DEFINE_integer("batch_size", None, "images per feature-extraction batch", flag_values=FLAGS)
flags.DEFINE_string(
  "inception_weights",
  None,
  "'' (FID weights), 'full' (with logits) or a converted .npz",
  flag_values=FLAGS,
)
flags.DEFINE_integer("seed", None, "seed of the evaluation noise", flag_values=FLAGS)
flags.DEFINE_bool(
  "confusion",
  False,
  "with --workdir of a classifier run (game semi_supervised): add its confusion matrices "
  "(test images by true class, rows, and predicted class, columns) for each parameter set",
  flag_values=FLAGS,
)
flags.DEFINE_list(
  "plugins",
  [],
  "modules to import before the run's config is read (those "
  "its config.json records are imported too)",
  flag_values=FLAGS,
)


def _eval_section(
  base: Mapping[str, Any], overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
  section = dict(evaluation.DEFAULTS, **base)
  section.update({k: v for k, v in overrides.items() if v is not None})
  section["every"] = 0
  return ml_collections.ConfigDict(section)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} not found: --workdir must be a run folder written by "
      "main.py (config.json, checkpoints/)"
    )
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def load_run(
  workdir: str, overrides: Mapping[str, Any] | None = None
) -> tuple[ml_collections.ConfigDict, spec_lib.RunSpec]:
  """Reads a run's config.json, importing the plug-ins it records, and builds its RunSpec.

  Args:
    workdir: the run folder.
    overrides: `eval` fields replacing the run's (e.g. {"metrics": "fid"}).

  Returns:
    (config, spec): the run's config (its `eval` section completed and overridden) and its
    RunSpec.

  Raises:
    FileNotFoundError: no config.json.
    ImportError: a plug-in recorded in the run's config.json cannot be imported.
  """
  config = load_run_config(workdir)
  # The run's own objectives, models, ... may come from plug-ins that main.py recorded.
  try:
    cli_lib.import_plugins(config.get("plugins"))
  except ImportError as e:
    raise ImportError(f"{workdir}/config.json records plug-ins: {e}") from e
  config.eval = _eval_section(
    config.get("eval", ml_collections.ConfigDict()).to_dict(), overrides or {}
  )
  return config, spec_lib.build_spec(config)


def restore_state(
  workdir: str, config: ml_collections.ConfigDict, spec: spec_lib.RunSpec, checkpoint: str
) -> tuple[Any, int]:
  """Restores a checkpoint of the run that `load_run` read.

  Args:
    workdir: the run folder (checkpoints/, checkpoints_best/).
    config, spec: `load_run(workdir)`.
    checkpoint: "latest", "best" or a step number.

  Returns:
    (state, step): the restored TrainState and the checkpoint's step.

  Raises:
    FileNotFoundError: no checkpoint folder or checkpoint.
    ConfigError: a malformed `checkpoint`, or a checkpoint of another config.
  """
  folder = "checkpoints_best" if checkpoint == "best" else "checkpoints"
  directory = os.path.join(workdir, folder)
  if not os.path.isdir(directory):
    raise FileNotFoundError(
      f"no {folder}/ in {workdir}"
      + (
        " (best checkpoints are kept only by runs with eval.every > 0)"
        if checkpoint == "best"
        else ""
      )
    )
  checkpoints = checkpoint_lib.Checkpointer(
    directory, keep=1 << 20, config=checkpoint_lib.config_to_dict(config)
  )
  if checkpoint in ("latest", "best"):
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}")
  else:
    try:
      step = int(checkpoint)
    except ValueError:
      raise ConfigError(
        f"--checkpoint={checkpoint!r}: expected latest, best or a step number"
      ) from None
  state = checkpoints.restore(train_lib.abstract_state(spec, config.seed), step)
  checkpoints.close()
  return state, int(step)


def evaluate_run(
  workdir: str,
  checkpoint: str = "latest",
  overrides: Mapping[str, Any] | None = None,
  seed: int | None = None,
  confusion: bool = False,
) -> dict:
  """Restores a run's checkpoint and evaluates its generator, or its classifier.

  Args:
    workdir: the run folder (config.json, checkpoints/, checkpoints_best/).
    checkpoint: "latest", "best" or a step number.
    overrides: `eval` fields replacing the run's (e.g. {"metrics": "fid"}).
    seed: seed of the evaluation noise (default: the run's seed).
    confusion: add "confusion": {parameter set: (K, K) nested lists of counts, rows the true
      class, columns the predicted one} (classifier runs only).

  Returns:
    The JSON record: workdir, checkpoint, step and the metrics.

  Raises:
    ImportError: a plug-in recorded in the run's config.json cannot be imported.
    ConfigError: `confusion` for a run without a classifier.
  """
  config, spec = load_run(workdir, overrides)
  # The run's own kind of evaluation: generated images, a classifier's test error (the
  # semi-supervised game) or both directions of a translation (CycleGAN).
  evaluator = evaluation.make_evaluator(config, mesh=spec.mesh)
  if confusion and not hasattr(evaluator, "confusion"):
    raise ConfigError(
      f"--confusion needs a run that trains a classifier (game 'semi_supervised'); {workdir} "
      f"trains game {config.get('game', spec_lib.DEFAULT_GAME)!r}"
    )
  state, step = restore_state(workdir, config, spec, checkpoint)
  seed = config.seed if seed is None else seed
  fns = sampling.evaluation_fns(evaluator.needs, spec, state, seed)
  record = {"workdir": workdir, "checkpoint": checkpoint, "step": step, **evaluator(fns, step)}
  if confusion:
    record["confusion"] = {k: m.tolist() for k, m in evaluator.confusion(fns).items()}
  return record


def _image_source_cfg(path: str, size: int, channels: int, resize: str) -> dict:
  source = "npz" if path.endswith(".npz") else "folder"
  return dict(
    source=source,
    name=os.path.basename(os.path.normpath(path)),
    path=path,
    split="train",
    image_size=size,
    channels=channels,
    resize=resize,
    stacked=False,
    num_examples=0,
  )


def load_images(path: str) -> np.ndarray:
  """uint8 images (N, H, W, C) from a folder (all images at the first one's size) or .npz."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"--images={path} does not exist")
  if path.endswith(".npz"):
    with np.load(path) as f:
      if not f.files:
        raise ValueError(f"{path} holds no arrays; expected uint8 images (N, H, W[, C])")
      key = next((k for k in ("images", "x", "image") if k in f.files), f.files[0])
      images = f[key]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
      raise ValueError(
        f"{path}: {key!r} has shape {images.shape}; expected images (N, H, W) or "
        "(N, H, W, C) with C = 1 or 3"
      )
    if images.dtype != np.uint8:
      raise ValueError(f"{path}: images must be uint8 in [0, 255], got {images.dtype}")
    if len(images) == 0:
      raise ValueError(f"{path}: {key!r} holds no images (shape {images.shape})")
    return images[..., None] if images.ndim == 3 else images
  from PIL import Image  # pylint: disable=g-import-not-at-top

  first = next(
    (
      os.path.join(d, f)
      for d, _, fs in sorted(os.walk(path))
      for f in sorted(fs)
      if f.lower().endswith(data_lib.sources.IMAGE_EXTENSIONS) and not f.startswith(".")
    ),
    None,
  )
  if first is None:
    raise FileNotFoundError(
      f"no images ({', '.join(data_lib.sources.IMAGE_EXTENSIONS)}) under --images={path}"
    )
  with Image.open(first) as im:
    w, h = im.size
    channels = 1 if im.mode in ("L", "I", "I;16", "1") else 3
  if h != w:
    raise ValueError(f"{path}: images must be square, {first} is {w}x{h}")
  source = data_lib.load_source(_image_source_cfg(path, h, channels, "resize"), 0)
  return source[np.arange(len(source))]["image"]


def reference_data(
  spec: str, size: int, channels: int, resize: str = "pad", stacked: bool = False
) -> dict:
  """The data section of --reference: a folder/.npz of real images, or SOURCE:NAME."""
  if os.path.exists(spec):
    return _image_source_cfg(spec, size, channels, resize)
  source, _, name = spec.partition(":")
  name = name or source
  if source not in set(data_lib.SOURCES):
    raise ConfigError(
      f"--reference={spec!r} is neither a file/folder nor SOURCE:NAME with "
      f"SOURCE in {', '.join(data_lib.SOURCES)}"
    )
  return dict(
    source=source,
    name=name,
    path="",
    split="train",
    image_size=size,
    channels=channels,
    resize=resize,
    stacked=stacked,
    num_examples=0,
  )


def evaluate_images(
  path: str,
  reference: str,
  overrides: Mapping[str, Any] | None = None,
  resize: str = "pad",
  stacked: bool = False,
) -> dict:
  """Evaluates a folder/.npz of images against a reference dataset.

  Args:
    path: folder of images or .npz with uint8 "images" (N, H, W[, C]).
    reference: SOURCE:NAME (e.g. idx:fashion_mnist) or a folder/.npz of real images.
    overrides: `eval` fields (metrics, num_samples, ...).
    resize, stacked: how the reference images are fitted (data.resize, data.stacked).

  Returns:
    The JSON record: images, reference and the metrics.

  The first `num_samples` images are scored (all of them by default), against as many real
  images as are scored unless `reference_samples` says otherwise: a metric compares sets of
  equal size, and a small evaluation does not wait for the features of 10k real images.
  """
  overrides = dict(overrides or {})
  images = load_images(path)
  _, h, w, c = images.shape
  if h != w:
    raise ValueError(f"images must be square, got {h}x{w}")
  if overrides.get("num_samples"):
    images = images[: overrides["num_samples"]]
  overrides["num_samples"] = len(images)
  overrides["reference_samples"] = overrides.get("reference_samples") or len(images)
  config = ml_collections.ConfigDict(
    {"seed": 0, "data": reference_data(reference, h, c, resize, stacked)}
  )
  config.eval = _eval_section({}, overrides)
  evaluator = evaluation.Evaluator.from_config(config)
  results = evaluator.evaluate_images(images)
  return {"images": path, "reference": reference, **results}


def main(argv: Sequence[str]) -> None:
  """Evaluates what the parsed FLAGS name and prints the JSON record on stdout.

  Args:
    argv: the program name and the arguments that are not flags (there must be none).

  Raises:
    SystemExit: code 2, after `error: <message>` on stderr, for a wrong combination of flags,
      a plug-in that cannot be imported, or a ConfigError, FileNotFoundError or ValueError of
      the evaluation.
  """
  if len(argv) > 1:
    cli_lib.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if (FLAGS.workdir is None) == (FLAGS.images is None):
    cli_lib.fail("pass exactly one of --workdir=RUN or --images=FOLDER_OR_NPZ")
  if FLAGS.images and not FLAGS.reference:
    cli_lib.fail("--images needs --reference=SOURCE:NAME or a folder/.npz of real images")
  if FLAGS.images and FLAGS.confusion:
    cli_lib.fail("--confusion needs --workdir of a classifier run, not --images")
  logging.set_verbosity(logging.INFO)
  overrides = {k: FLAGS[k].value for k in OVERRIDABLE}
  try:
    cli_lib.import_plugins(FLAGS.plugins)
    if FLAGS.workdir:
      record = evaluate_run(
        FLAGS.workdir, FLAGS.checkpoint, overrides, FLAGS.seed, confusion=FLAGS.confusion
      )
    else:
      record = evaluate_images(
        FLAGS.images, FLAGS.reference, overrides, FLAGS.reference_resize, FLAGS.stacked
      )
  except (ConfigError, FileNotFoundError, ImportError, ValueError) as e:
    cli_lib.fail(str(e))
  print(json.dumps(record), flush=True)


def cli(argv: Sequence[str]) -> None:
  """Parses a command line (program name first, e.g. sys.argv) and runs `main`."""
  cli_lib.cli(main, FLAGS, argv)


def run() -> None:
  """The console entry point (gan-jax-evaluate)."""
  cli_lib.run_app(main, FLAGS, __doc__)


if __name__ == "__main__":
  run()
