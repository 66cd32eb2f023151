r"""Evaluates a trained run, or any images, and prints one JSON line.

A run's checkpoint (latest, best, or a step), against the run's own data:

  python -m gan_jax.evaluate --workdir=runs/dcgan
  python -m gan_jax.evaluate --workdir=runs/dcgan --checkpoint=best --metrics=fid,kid

Images from any model (a folder of PNG/JPEG/... files or an .npz with uint8 "images"),
against a dataset (`SOURCE:NAME`, e.g. idx:fashion_mnist, tfds:cifar10, digits) or against
another folder/.npz of real images:

  python -m gan_jax.evaluate --images=samples.npz --reference=idx:fashion_mnist \
      --metrics=fid,kid,precision_recall

Metric options default to the run's `eval` config section (configs/presets.py eval_config());
flags override them.
"""

from __future__ import annotations

import json
import os
import sys

import ml_collections
import numpy as np
from absl import app, flags, logging

from gan_jax import data as data_lib
from gan_jax import evaluation
from gan_jax.registry import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder (config.json, checkpoints/).")
flags.DEFINE_string("checkpoint", "latest", "latest, best, or a step number.")
flags.DEFINE_string("images", None, "Folder or .npz of images to evaluate instead of a run.")
flags.DEFINE_string("reference", None,
                    "Real data for --images: SOURCE:NAME (idx:fashion_mnist, tfds:cifar10, "
                    "digits, ...) or a folder/.npz of real images.")
flags.DEFINE_string("reference_resize", "pad",
                    "How --reference images are fitted to the evaluated size: pad, resize, "
                    "crop_resize.")
flags.DEFINE_bool("stacked", False, "--reference is stacked into RGB (Stacked MNIST).")
flags.DEFINE_string("metrics", None, "Comma-separated metrics (default: the run's eval.metrics"
                    " or auto); valid: " + ", ".join(evaluation.METRICS))
flags.DEFINE_integer("num_samples", None, "Generated images (default: eval.num_samples).")
flags.DEFINE_integer("reference_samples", None, "Real images for the reference statistics.")
flags.DEFINE_string("reference_split", None, "train or test.")
flags.DEFINE_integer("batch_size", None, "Images per feature-extraction batch.")
flags.DEFINE_string("inception_weights", None,
                    "'' (FID weights), 'full' (with logits, for inception_score) or a path.")
flags.DEFINE_integer("seed", None, "Seed of the evaluation noise (default: the run's seed).")


def _overrides() -> dict:
  names = ("metrics", "num_samples", "reference_samples", "reference_split", "batch_size",
           "inception_weights")
  return {n: getattr(FLAGS, n) for n in names if getattr(FLAGS, n) is not None}


def _eval_section(base: dict) -> ml_collections.ConfigDict:
  section = dict(evaluation.DEFAULTS, **base, **_overrides())
  section["every"] = 0
  return ml_collections.ConfigDict(section)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a run folder written by "
                            "main.py (config.json, checkpoints/)")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def evaluate_run(workdir: str, checkpoint: str = "latest") -> dict:
  """Restores a run's checkpoint and evaluates its generator; returns the JSON record."""
  from gan_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from gan_jax import train as train_lib  # pylint: disable=g-import-not-at-top
  config = load_run_config(workdir)
  config.eval = _eval_section(config.get("eval", ml_collections.ConfigDict()).to_dict())
  folder = "checkpoints_best" if checkpoint == "best" else "checkpoints"
  directory = os.path.join(workdir, folder)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no {folder}/ in {workdir}" + (
        " (best checkpoints are kept only by runs with eval.every > 0)"
        if checkpoint == "best" else ""))
  spec = spec_lib.build_spec(config)
  checkpoints = checkpoint_lib.Checkpointer(directory, keep=1 << 20,
                                            config=checkpoint_lib.config_to_dict(config))
  if checkpoint in ("latest", "best"):
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}")
  else:
    try:
      step = int(checkpoint)
    except ValueError:
      raise ConfigError(f"--checkpoint={checkpoint!r}: expected latest, best or a step "
                        "number") from None
  state = checkpoints.restore(train_lib.abstract_state(spec, config.seed), step)
  checkpoints.close()
  evaluator = evaluation.Evaluator.from_config(config, mesh=spec.mesh)
  seed = config.seed if FLAGS.seed is None else FLAGS.seed
  sample_fn = evaluation.make_sample_fn(spec, state, seed)
  results = evaluator(sample_fn, step)
  return {"workdir": workdir, "checkpoint": checkpoint, "step": int(step), **results}


def _image_source_cfg(path: str, size: int, channels: int, resize: str) -> dict:
  source = "npz" if path.endswith(".npz") else "folder"
  return dict(source=source, name=os.path.basename(os.path.normpath(path)), path=path,
              split="train", image_size=size, channels=channels, resize=resize, stacked=False,
              num_examples=0)


def load_images(path: str) -> np.ndarray:
  """uint8 images (N, H, W, C) from a folder (all images at the first one's size) or .npz."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"--images={path} does not exist")
  if path.endswith(".npz"):
    with np.load(path) as f:
      key = next((k for k in ("images", "x", "image") if k in f.files), f.files[0])
      images = f[key]
    if images.dtype != np.uint8:
      raise ValueError(f"{path}: images must be uint8 in [0, 255], got {images.dtype}")
    return images[..., None] if images.ndim == 3 else images
  from PIL import Image  # pylint: disable=g-import-not-at-top
  first = next((os.path.join(d, f) for d, _, fs in sorted(os.walk(path)) for f in sorted(fs)
                if f.lower().endswith(data_lib.sources.IMAGE_EXTENSIONS)
                and not f.startswith(".")), None)
  if first is None:
    raise FileNotFoundError(f"no images ({', '.join(data_lib.sources.IMAGE_EXTENSIONS)}) "
                            f"under --images={path}")
  with Image.open(first) as im:
    w, h = im.size
    channels = 1 if im.mode in ("L", "I", "I;16", "1") else 3
  if h != w:
    raise ValueError(f"{path}: images must be square, {first} is {w}x{h}")
  source = data_lib.load_source(_image_source_cfg(path, h, channels, "resize"), 0)
  return source[np.arange(len(source))]["image"]


def _reference_data(spec: str, size: int, channels: int) -> dict:
  if os.path.exists(spec):
    return _image_source_cfg(spec, size, channels, FLAGS.reference_resize)
  source, _, name = spec.partition(":")
  name = name or source
  if source not in set(data_lib.SOURCES):
    raise ConfigError(f"--reference={spec!r} is neither a file/folder nor SOURCE:NAME with "
                      f"SOURCE in {', '.join(data_lib.SOURCES)}")
  stacked = FLAGS.stacked
  return dict(source=source, name=name, path="", split="train", image_size=size,
              channels=channels, resize=FLAGS.reference_resize, stacked=stacked,
              num_examples=0)


def evaluate_images(path: str, reference: str) -> dict:
  """Evaluates a folder/.npz of images against a reference dataset; returns the record."""
  images = load_images(path)
  n, h, w, c = images.shape
  if h != w:
    raise ValueError(f"images must be square, got {h}x{w}")
  config = ml_collections.ConfigDict({"seed": FLAGS.seed or 0,
                                      "data": _reference_data(reference, h, c)})
  config.eval = _eval_section({})
  evaluator = evaluation.Evaluator.from_config(config)
  if evaluator.num_samples < n and "num_samples" in _overrides():
    images = images[:evaluator.num_samples]
  results = evaluator.evaluate_images(images)
  return {"images": path, "reference": reference, **results}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if (FLAGS.workdir is None) == (FLAGS.images is None):
    raise app.UsageError("pass exactly one of --workdir=RUN or --images=FOLDER_OR_NPZ")
  try:
    if FLAGS.workdir:
      record = evaluate_run(FLAGS.workdir, FLAGS.checkpoint)
    else:
      if not FLAGS.reference:
        raise app.UsageError("--images needs --reference=SOURCE:NAME or a folder/.npz of "
                             "real images")
      record = evaluate_images(FLAGS.images, FLAGS.reference)
  except (ConfigError, FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(json.dumps(record), flush=True)


if __name__ == "__main__":
  app.run(main)
