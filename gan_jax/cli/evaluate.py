r"""Evaluates a trained run, or any images, and prints one JSON line.

A run's checkpoint (latest, best, or a step), against the run's own data:

  python -m gan_jax.cli.evaluate --workdir=runs/dcgan
  python -m gan_jax.cli.evaluate --workdir=runs/dcgan --checkpoint=best --metrics=fid,kid

Images from any model (a folder of PNG/JPEG/... files or an .npz with uint8 "images"),
against a dataset (`SOURCE:NAME`, e.g. idx:fashion_mnist, tfds:cifar10, digits) or against
another folder/.npz of real images:

  python -m gan_jax.cli.evaluate --images=samples.npz --reference=idx:fashion_mnist \
      --metrics=fid,kid,precision_recall

Metric options default to the run's `eval` config section (configs/presets.py eval_config());
flags override them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import evaluation
from gan_jax import sampling
from gan_jax import spec as spec_lib
from gan_jax import train as train_lib
from gan_jax.core.registry import ConfigError

# `eval` fields that command-line flags override.
OVERRIDABLE = ("metrics", "num_samples", "reference_samples", "reference_split", "batch_size",
               "inception_weights")


def _eval_section(base: Mapping[str, Any], overrides: Mapping[str, Any]
                  ) -> ml_collections.ConfigDict:
  section = dict(evaluation.DEFAULTS, **base)
  section.update({k: v for k, v in overrides.items() if v is not None})
  section["every"] = 0
  return ml_collections.ConfigDict(section)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a run folder written by "
                            "main.py (config.json, checkpoints/)")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def evaluate_run(workdir: str, checkpoint: str = "latest",
                 overrides: Mapping[str, Any] | None = None, seed: int | None = None) -> dict:
  """Restores a run's checkpoint and evaluates its generator.

  Args:
    workdir: the run folder (config.json, checkpoints/, checkpoints_best/).
    checkpoint: "latest", "best" or a step number.
    overrides: `eval` fields replacing the run's (e.g. {"metrics": "fid"}).
    seed: seed of the evaluation noise (default: the run's seed).

  Returns:
    The JSON record: workdir, checkpoint, step and the metrics.
  """
  config = load_run_config(workdir)
  config.eval = _eval_section(config.get("eval", ml_collections.ConfigDict()).to_dict(),
                              overrides or {})
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
  seed = config.seed if seed is None else seed
  sample_fn = sampling.make_sample_fn(spec, state, seed)
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


def reference_data(spec: str, size: int, channels: int, resize: str = "pad",
                   stacked: bool = False) -> dict:
  """The data section of --reference: a folder/.npz of real images, or SOURCE:NAME."""
  if os.path.exists(spec):
    return _image_source_cfg(spec, size, channels, resize)
  source, _, name = spec.partition(":")
  name = name or source
  if source not in set(data_lib.SOURCES):
    raise ConfigError(f"--reference={spec!r} is neither a file/folder nor SOURCE:NAME with "
                      f"SOURCE in {', '.join(data_lib.SOURCES)}")
  return dict(source=source, name=name, path="", split="train", image_size=size,
              channels=channels, resize=resize, stacked=stacked, num_examples=0)


def evaluate_images(path: str, reference: str, overrides: Mapping[str, Any] | None = None,
                    resize: str = "pad", stacked: bool = False) -> dict:
  """Evaluates a folder/.npz of images against a reference dataset.

  Args:
    path: folder of images or .npz with uint8 "images" (N, H, W[, C]).
    reference: SOURCE:NAME (e.g. idx:fashion_mnist) or a folder/.npz of real images.
    overrides: `eval` fields (metrics, num_samples, ...).
    resize, stacked: how the reference images are fitted (data.resize, data.stacked).

  Returns:
    The JSON record: images, reference and the metrics.
  """
  overrides = dict(overrides or {})
  images = load_images(path)
  _, h, w, c = images.shape
  if h != w:
    raise ValueError(f"images must be square, got {h}x{w}")
  config = ml_collections.ConfigDict(
      {"seed": 0, "data": reference_data(reference, h, c, resize, stacked)})
  config.eval = _eval_section({}, overrides)
  evaluator = evaluation.Evaluator.from_config(config)
  if overrides.get("num_samples"):
    images = images[:overrides["num_samples"]]
  results = evaluator.evaluate_images(images)
  return {"images": path, "reference": reference, **results}


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", help="run folder (config.json, checkpoints/)")
  parser.add_argument("--checkpoint", default="latest", help="latest, best, or a step number")
  parser.add_argument("--images", help="folder or .npz of images to evaluate instead of a run")
  parser.add_argument("--reference", help="real data for --images: SOURCE:NAME "
                      "(idx:fashion_mnist, tfds:cifar10, digits, ...) or a folder/.npz")
  parser.add_argument("--reference_resize", default="pad",
                      choices=data_lib.sources.RESIZE_MODES,
                      help="how --reference images are fitted to the evaluated size")
  parser.add_argument("--stacked", action="store_true",
                      help="stack --reference into RGB (Stacked MNIST)")
  parser.add_argument("--metrics", help="comma-separated metrics; valid: "
                      + ", ".join(evaluation.METRICS))
  parser.add_argument("--num_samples", type=int, help="generated images to evaluate")
  parser.add_argument("--reference_samples", type=int,
                      help="real images for the reference statistics")
  parser.add_argument("--reference_split", choices=("train", "test"))
  parser.add_argument("--batch_size", type=int, help="images per feature-extraction batch")
  parser.add_argument("--inception_weights",
                      help="'' (FID weights), 'full' (with logits) or a converted .npz")
  parser.add_argument("--seed", type=int, help="seed of the evaluation noise")
  args = parser.parse_args(argv)
  if (args.workdir is None) == (args.images is None):
    parser.error("pass exactly one of --workdir=RUN or --images=FOLDER_OR_NPZ")
  if args.images and not args.reference:
    parser.error("--images needs --reference=SOURCE:NAME or a folder/.npz of real images")
  logging.set_verbosity(logging.INFO)
  overrides = {k: getattr(args, k) for k in OVERRIDABLE}
  try:
    if args.workdir:
      record = evaluate_run(args.workdir, args.checkpoint, overrides, args.seed)
    else:
      record = evaluate_images(args.images, args.reference, overrides, args.reference_resize,
                               args.stacked)
  except (ConfigError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(json.dumps(record), flush=True)


if __name__ == "__main__":
  main()
