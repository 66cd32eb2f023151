r"""CycleGAN's two generator variants side by side: parameter counts and ms per iteration.

Builds configs/cyclegan.py twice, with two generators and with model.shared_encoder, compiles
both training iterations in this process and times them in alternating windows (full, shared,
shared, full, ...), so both see the same load; prints one JSON document:

  python benchmarks/cyclegan_variants.py --width=16 --batch_size=8 --windows=8 \
      --iters_per_window=10 --out=/tmp/cyclegan_variants.json

Rows: parameters per network and per role (generators, discriminators), ms/iter of every
window and their median; `shared_over_full` is the ratio of the medians (< 1: the shared
encoder is faster) and of the generator parameter counts. Load averages are recorded before
and after.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[0] != _ROOT:
  sys.path.insert(0, _ROOT)  # gan_jax, without installing the package.

import jax
import numpy as np
from absl import app, flags

from gan_jax import configs
from gan_jax import spec as spec_lib
from gan_jax import train as train_lib
from gan_jax.core import parallel

VARIANTS = {"full": "digits_mnist", "shared": "digits_mnist,shared_encoder"}

FLAGS = flags.FLAGS
flags.DEFINE_integer("width", 0, "Generator width (0: the config's).")
flags.DEFINE_integer("discriminator_width", 0, "PatchGAN width (0: the config's).")
flags.DEFINE_integer("n_blocks", 0, "Residual blocks (0: the config's).")
flags.DEFINE_integer("batch_size", 0, "Batch of each domain (0: the config's).")
flags.DEFINE_integer("image_size", 0, "Image size (0: the config's).")
flags.DEFINE_integer("devices", 1, "Devices (0: all).")
flags.DEFINE_integer("warmup", 3, "Untimed iterations after compilation.")
flags.DEFINE_integer("windows", 8, "Timed windows per variant (alternating).")
flags.DEFINE_integer("iters_per_window", 10, "Iterations per window.")
flags.DEFINE_string("out", None, "Also write the JSON here.")


def make_config(arg: str):
  cfg = configs.get("cyclegan", arg)
  for field, value in (
    ("model.width", FLAGS.width),
    ("model.discriminator_width", FLAGS.discriminator_width),
    ("model.n_blocks", FLAGS.n_blocks),
    ("train.batch_size", FLAGS.batch_size),
    ("data.image_size", FLAGS.image_size),
  ):
    if value:
      section, name = field.split(".")
      cfg[section][name] = value
  cfg.train.devices = FLAGS.devices
  cfg.eval.every = 0
  return cfg


def load_average() -> list[float] | None:
  """1, 5 and 15 minute load averages: how busy the host was."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except (AttributeError, OSError):
    return None


def count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


class Variant:
  """One variant's compiled iteration, state and batch."""

  def __init__(self, arg: str):
    self.config = make_config(arg)
    self.spec = spec_lib.build_spec(self.config, mesh=parallel.make_mesh(self.config.train.devices))
    self.state = train_lib.init_state(self.spec, self.config.seed)
    shape = (self.spec.batches_per_iteration, self.spec.batch_size) + self.spec.image_shape
    rng = np.random.default_rng(0)
    sharding = parallel.batch_sharding(self.spec.mesh, batch_dim=1)
    self.batch = {
      f"image_{v}": jax.device_put(rng.integers(0, 256, shape, dtype=np.uint8), sharding)
      for v in ("x", "y")
    }
    start = time.perf_counter()
    self.step = train_lib.compile_train_iteration(self.spec).lower(self.state, self.batch).compile()
    self.compile_s = time.perf_counter() - start
    self.window_ms: list[float] = []

  def params(self) -> dict[str, int]:
    return {name: count(p) for name, p in self.state.params.items()}

  def run(self, n: int) -> float:
    """Runs n iterations; returns ms per iteration."""
    start = time.perf_counter()
    for _ in range(n):
      self.state, metrics = self.step(self.state, self.batch)  # the state is donated
    jax.block_until_ready((self.state, metrics))
    return 1e3 * (time.perf_counter() - start) / n


def main(argv):
  del argv
  load_before = load_average()
  variants = {name: Variant(arg) for name, arg in VARIANTS.items()}
  for v in variants.values():
    v.run(FLAGS.warmup)
  order = list(variants)
  for w in range(FLAGS.windows):
    for name in order if w % 2 == 0 else order[::-1]:
      variants[name].window_ms.append(variants[name].run(FLAGS.iters_per_window))
  rows = {}
  for name, v in variants.items():
    params = v.params()
    rows[name] = {
      "config": f"cyclegan:{VARIANTS[name]}",
      "params": params,
      "generator_params": sum(n for k, n in params.items() if not k.startswith("discrim")),
      "discriminator_params": sum(n for k, n in params.items() if k.startswith("discrim")),
      "compile_s": round(v.compile_s, 2),
      "window_ms": [round(x, 2) for x in v.window_ms],
      "ms_per_iter_median": float(np.median(v.window_ms)),
    }
  cfg = variants["full"].config
  report = {
    "settings": {
      "image_size": cfg.data.image_size,
      "width": cfg.model.width,
      "discriminator_width": cfg.model.discriminator_width,
      "discriminator_layers": cfg.model.discriminator_layers,
      "n_blocks": cfg.model.n_blocks,
      "batch_size": cfg.train.batch_size,
      "windows": FLAGS.windows,
      "iters_per_window": FLAGS.iters_per_window,
      "devices": variants["full"].spec.mesh.size,
    },
    "variants": rows,
    "shared_over_full": {
      "ms_per_iter": rows["shared"]["ms_per_iter_median"] / rows["full"]["ms_per_iter_median"],
      "generator_params": rows["shared"]["generator_params"] / rows["full"]["generator_params"],
    },
    "load_average_before": load_before,
    "load_average_after": load_average(),
    "device": {
      "kind": jax.devices()[0].device_kind,
      "platform": jax.default_backend(),
      "cpu_count": os.cpu_count(),
      "machine": platform.machine(),
    },
    "jax": jax.__version__,
  }
  text = json.dumps(report, indent=2)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
