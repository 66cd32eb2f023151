r"""XLA:CPU's convolution kernels, Eigen against YNNPACK, in one process (train.cpu_convolutions).

`gan_jax/core/xla_cpu.py` compiles the training iteration on CPU with the convolutions left to
XLA's Eigen kernels instead of YNNPACK, XLA:CPU's default. This script times both ways side by
side, in alternating windows (`bench.alternate`, 1-minute load recorded per window):

- `--layers`: single layers of the library (`gan_jax/models/conv.py`: the forward convolution,
  its kernel gradient and its input gradient, batch chunks as the library makes them) for
  DCGAN's three D convolutions at 32x32x3, C = 64, and the lens's 32->32 3x3 convolution;
- `--rows`: whole training iterations (`bench.JaxTimer`, as `bench.py` builds them), compiled
  twice: with train.cpu_convolutions = "ynnpack" and "eigen".

  python benchmarks/cpu_convolutions.py --layer_batch_sizes=64,256 \
      --rows=non_saturating:64,non_saturating+lens:64,wgan_gp:64,began:16 --out=/tmp/conv.json

Prints one JSON document; `ynnpack_over_eigen` > 1 means the Eigen kernels are faster: the
ratio of the two sides' median windows, and `pairs` the ratios of each window pair (the two
windows of a pair are adjacent in time, so they share the host's load).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (_ROOT, os.path.join(_ROOT, "benchmarks")):
  if _path not in sys.path:
    sys.path.insert(0, _path)

import bench  # noqa: E402  (benchmarks/bench.py)
import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from gan_jax.models import conv  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("layer_batch_sizes", ["64", "256"], "Batch sizes of the layer timings.")
flags.DEFINE_boolean("layers", True, "Time single layers.")
flags.DEFINE_list(
  "rows",
  ["non_saturating:64", "non_saturating+lens:64"],
  "Whole iterations: objective[+stabiliser]:B (objectives of bench.py).",
)
flags.DEFINE_integer("layer_iters", 5, "Calls per layer window.")
flags.DEFINE_integer("layer_windows", 4, "Windows per layer and side.")
flags.DEFINE_integer("row_iters", 3, "Iterations per row window.")
flags.DEFINE_integer("row_windows", 6, "Windows per row and side.")

SIDES = ("ynnpack", "eigen")


def _compare(build, iters: int, windows: int) -> dict[str, Any]:
  """Both sides built by build(kernels), timed in alternating windows."""
  sides = {kernels: build(kernels) for kernels in SIDES}
  records = bench.alternate(sides, [iters] * windows)
  out = {name: bench.summarise([r for r in records if r["side"] == name]) for name in sides}
  out["ynnpack_over_eigen"] = (
    out["ynnpack"]["ms_per_iter_median"] / out["eigen"]["ms_per_iter_median"]
  )
  out["pairs"] = [
    y / e for y, e in zip(out["ynnpack"]["window_ms"], out["eigen"]["window_ms"], strict=True)
  ]
  out["pairs_median"] = float(np.median(out["pairs"]))
  return out


def layer_rows() -> list[dict[str, Any]]:
  rows = []
  for batch in map(int, FLAGS.layer_batch_sizes):
    for name, cin, cout, size, kernel, stride in bench.CONV_LAYERS:
      keys = jax.random.split(jax.random.PRNGKey(0), 3)
      out_size = -(-size // stride)
      x = jax.random.normal(keys[0], (batch, size, size, cin))
      k = jax.random.normal(keys[1], (kernel, kernel, cin, cout))
      g = jax.random.normal(keys[2], (batch, out_size, out_size, cout))
      s = (stride, stride)
      row = {
        "layer": name,
        "batch_size": batch,
        "gflop_per_call": 2 * batch * out_size**2 * cin * cout * kernel**2 / 1e9,
      }
      ops = {
        "forward": (functools.partial(conv.conv, strides=s), (x, k)),
        "kernel_grad": (
          functools.partial(conv.conv_kernel_grad, k_shape=k.shape, strides=s),
          (x, g),
        ),
        "input_grad": (
          functools.partial(conv.conv_input_grad, x_shape=x.shape, strides=s),
          (g, k),
        ),
      }
      for op, (fn, args) in ops.items():
        row[op] = _compare(
          lambda kernels, fn=fn, args=args: bench.CompiledCalls(fn, args, kernels),
          FLAGS.layer_iters,
          FLAGS.layer_windows,
        )
      rows.append(row)
      print(
        f"{name} B={batch}: "
        + ", ".join(
          f"{op} {row[op]['ynnpack']['ms_per_iter_median']:.1f} -> "
          f"{row[op]['eigen']['ms_per_iter_median']:.1f} ms"
          for op in ops
        ),
        file=sys.stderr,
      )
  return rows


def iteration_rows() -> list[dict[str, Any]]:
  rows = []
  for spec in FLAGS.rows:
    what, batch = spec.split(":")
    objective, _, stabiliser = what.partition("+")

    def build(kernels, objective=objective, batch=batch, stabiliser=stabiliser):
      cfg = bench.make_config(objective, int(batch), 64, 32, 3, stabiliser or "none")
      cfg.train.cpu_convolutions = kernels
      return bench.JaxTimer(cfg, warmup=2, devices=1, seed=0)

    row = {"objective": objective, "stabilisers": stabiliser or "none", "batch_size": int(batch)}
    row.update(_compare(build, FLAGS.row_iters, FLAGS.row_windows))
    rows.append(row)
    print(
      f"{spec}: ynnpack {row['ynnpack']['ms_per_iter_median']:.0f} -> eigen "
      f"{row['eigen']['ms_per_iter_median']:.0f} ms/iter (pairs' median ratio "
      f"{row['pairs_median']:.3f})",
      file=sys.stderr,
    )
  return rows


def main(argv):
  del argv
  report = {
    "device": bench.device_info(),
    "versions": bench.versions(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "load_average_before": bench.load_average(),
    "layers": layer_rows() if FLAGS.layers else [],
    "rows": iteration_rows(),
    "load_average_after": bench.load_average(),
  }
  bench.write_report(report)


if __name__ == "__main__":
  app.run(main)
