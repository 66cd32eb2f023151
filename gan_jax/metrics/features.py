"""Feature extractors: jit-compiled, batched and sharded over devices, found by name.

An extractor maps uint8 images (N, H, W, C) to named float32 arrays (N, ...): "features"
(the embedding FID/KID/precision-recall use) and, where the network has them, "logits" (for
the Inception score and mode counting). Its `key` identifies the network and its weights, so
cached reference statistics are never reused across extractors.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from gan_jax import writers
from gan_jax.core import parallel, xla_cpu
from gan_jax.core.registry import Registry

# name -> factory(options: Mapping, mesh) -> FeatureExtractor; the options are the `eval`
# config section as a dict.
EXTRACTORS: Registry[Callable[..., FeatureExtractor]] = Registry("feature extractor")


@functools.lru_cache(maxsize=16)
def _jitted(
  fn: Callable[[Any, jax.Array], Mapping],
  outputs: tuple[tuple[str, str], ...],
  mesh: Mesh,
  cpu_convolutions: str,
) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
  """The jitted `fn` for one output selection and mesh, shared by the extractors built alike.

  An evaluator builds its extractors anew (one per evaluation in a notebook, one per run of the
  evaluation API), and Inception-v3 takes seconds to compile: one jitted function per network
  compiles once per batch shape in a process.
  """
  names = dict(outputs)
  replicated, batch = parallel.replicated(mesh), parallel.batch_sharding(mesh)

  def run(p, images):
    out = fn(p, images)
    return {names[k]: out[k] for k in names}

  return jax.jit(
    run,
    in_shardings=(replicated, batch),
    out_shardings=batch,
    # On CPU, Inception-v3's features of 50 images took 4.0 s with the convolutions on XLA's
    # Eigen kernels and 8.4 s on YNNPACK, XLA:CPU's default (docs/evaluation.md).
    compiler_options=xla_cpu.compiler_options(
      mesh.devices.flat[0].platform, cpu_convolutions, "FeatureExtractor(cpu_convolutions=...)"
    ),
  )


class FeatureExtractor:
  """Applies `fn(params, images) -> {name: (B, ...)}` to any number of images in batches.

  Each batch is split over the devices of `mesh` (data parallel; params replicated) and the
  last partial batch is padded, so one compiled program serves every call.

  Args:
    name: short name, e.g. "inception".
    key: identity of the network and weights (part of reference-statistics cache keys).
    fn: jittable function of (params, uint8 images (B, H, W, C)).
    params: the network's weights.
    outputs: {output name of fn: name returned} (e.g. {"pool3": "features"}).
    batch_size: images per batch (rounded up to a multiple of the device count).
    mesh: devices to run on (default: all).
    channels: image channels the network expects (1 or 3); other counts are converted.
    cpu_convolutions: the kernels of the network's convolutions on CPU, "eigen" or "ynnpack"
      (`gan_jax.core.xla_cpu`).
  """

  def __init__(
    self,
    name: str,
    key: str,
    fn: Callable[[Any, jax.Array], Mapping],
    params: Any,
    outputs: Mapping[str, str],
    batch_size: int = 100,
    mesh: Mesh | None = None,
    channels: int | None = None,
    cpu_convolutions: str = xla_cpu.DEFAULT_CONVOLUTION_KERNELS,
  ):
    self.name, self.key = name, key
    self.outputs = dict(outputs)
    self.channels = channels
    self.mesh = mesh if mesh is not None else parallel.make_mesh()
    n_dev = self.mesh.size
    self.batch_size = max(n_dev, -(-batch_size // n_dev) * n_dev)
    self._params = jax.device_put(params, parallel.replicated(self.mesh))
    self._fn = _jitted(fn, tuple(self.outputs.items()), self.mesh, cpu_convolutions)

  def _convert_channels(self, images: np.ndarray) -> np.ndarray:
    c = images.shape[-1]
    if self.channels is None or c == self.channels:
      return images
    if c == 1 and self.channels == 3:
      return np.repeat(images, 3, axis=-1)
    raise ValueError(f"{self.name} expects {self.channels}-channel images, got {c} channels")

  def __call__(
    self, images: np.ndarray, log_every: int = 0, warn_seconds: float = 60.0
  ) -> dict[str, np.ndarray]:
    """Outputs for uint8 images (N, H, W, C) -> {name: float32 (N, ...)} on the host.

    Args:
      images: uint8 (N, H, W, C); floats are rejected, convert with `to_uint8`.
      log_every: log progress (images/s and ETA) every this many batches (0: never).
      warn_seconds: with `log_every`, log a warning with the expected duration when, timed
        on the second batch (the first includes compilation), the rest takes longer.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(
        f"{self.name} features need uint8 images (N, H, W, C), got "
        f"{images.dtype} {images.shape}; convert generator outputs in "
        "[-1, 1] with gan_jax.images.to_uint8"
      )
    images = self._convert_channels(images)
    n, b = len(images), self.batch_size
    if n == 0:
      raise ValueError("no images to extract features from")
    parts: dict[str, list[np.ndarray]] = {v: [] for v in self.outputs.values()}
    start = time.time()
    compiled = None  # (time, images done) after the first batch; rates are measured from it
    for i, lo in enumerate(range(0, n, b)):
      # The last chunk is padded to the compiled batch size; padded rows are dropped.
      out = jax.device_get(self._fn(self._params, parallel.pad_batch(images[lo : lo + b], b)))
      for k, v in out.items():
        parts[k].append(np.asarray(v, np.float32)[: min(b, n - lo)])
      if not log_every:
        continue
      done, now = min(n, lo + b), time.time()
      if compiled is None:
        compiled = (now, done)
        continue
      rate = (done - compiled[1]) / max(now - compiled[0], 1e-9)
      eta = (n - done) / rate
      if i == 1 and eta > warn_seconds:
        logging.warning(
          "%s features of %d images will take about %s more at %.1f images/s "
          "(fewer images: eval.num_samples / eval.reference_samples, or a GPU)",
          self.name,
          n,
          writers.format_duration(eta),
          rate,
        )
      if (i + 1) % log_every == 0:
        logging.info(
          "%s features: %d/%d images, %.1f images/s, ETA %s (%s elapsed)",
          self.name,
          done,
          n,
          rate,
          writers.format_duration(eta),
          writers.format_duration(now - start),
        )
    return {k: np.concatenate(v) for k, v in parts.items()}


@EXTRACTORS.register("inception")
def inception_extractor(options: Mapping[str, Any], mesh: Mesh | None = None) -> FeatureExtractor:
  """The FID Inception-v3: "features" = pool3 (2048), plus "logits" (1008, unbiased as in the
  official Inception-score code) when `options["inception_weights"]` names converted full
  weights ("full": the cached ones; a path: that .npz)."""
  from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top

  which = options.get("inception_weights", "")
  if which == "full":
    params = inception.load_params(full=True)
  elif which:
    params = inception.load_params(which)
  else:
    params = inception.load_params()
  outputs = {"pool3": "features"}
  if "fc_kernel" in params:
    outputs["logits_unbiased"] = "logits"
  key = f"inception-2015-12-05-{inception.weights_id(params)}"
  return FeatureExtractor(
    "inception",
    key,
    inception.apply,
    params,
    outputs,
    batch_size=options.get("batch_size", 50),
    mesh=mesh,
    channels=3,
  )
