r"""What computing the convolution gradients on batch chunks buys on a CPU, in one process.

`gan_jax/models/conv.py` computes the input and kernel gradients of its convolutions on XLA:CPU
in batch chunks of at most `_CHUNK_ELEMENTS` elements. This script times both ways side by
side, in alternating windows (`bench.alternate`, 1-minute load recorded per window):

- `--layers`: the kernel gradient and the input gradient of single layers (DCGAN's three D
  convolutions at 32x32x3, C = 64, and the lens's 32->32 3x3 convolution), whole and chunked;
- `--rows`: whole training iterations (`bench.JaxTimer`, as `bench.py` builds them), compiled
  twice in this process: once with chunking off (`_CHUNK_ELEMENTS` larger than any batch) and
  once as the library runs.

Both sides compile their convolutions on the kernels of `--cpu_convolutions` (eigen or
ynnpack; default the library's, eigen; `gan_jax/core/xla_cpu.py`).

  python benchmarks/conv_chunks.py --layer_batch_sizes=64,256,1024 \
      --rows=non_saturating:256,non_saturating+lens:64 --out=/tmp/conv_chunks.json

Prints one JSON document; `whole_over_chunked` > 1 means chunking is faster.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (_ROOT, os.path.join(_ROOT, "benchmarks")):
  if _path not in sys.path:
    sys.path.insert(0, _path)

import bench  # noqa: E402  (benchmarks/bench.py)
import jax  # noqa: E402
from absl import app, flags  # noqa: E402

from gan_jax.core import xla_cpu  # noqa: E402
from gan_jax.models import conv  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("layer_batch_sizes", ["64", "256"], "Batch sizes of the layer timings.")
flags.DEFINE_boolean("layers", True, "Time single layers' gradients.")
flags.DEFINE_list(
  "rows",
  ["non_saturating:256", "non_saturating+lens:64"],
  "Whole iterations: objective[+stabiliser]:B (objectives of bench.py).",
)
flags.DEFINE_integer("layer_iters", 5, "Calls per layer window.")
flags.DEFINE_integer("layer_windows", 4, "Windows per layer and way.")
flags.DEFINE_integer("row_iters", 2, "Iterations per row window.")
flags.DEFINE_integer("row_windows", 4, "Windows per row and way.")
flags.DEFINE_integer(
  "chunk_elements", 0, "Chunk budget of the chunked side, in elements (0: the library's)."
)

_OFF = sys.maxsize  # a chunk budget no batch reaches: chunking off


def _kernels() -> str:
  """The convolution kernels of both sides: --cpu_convolutions (bench.py's flag) or the
  library's default."""
  return FLAGS.cpu_convolutions or xla_cpu.DEFAULT_CONVOLUTION_KERNELS


def _with_budget(budget: int, build):
  """build() traced and compiled with conv._CHUNK_ELEMENTS = budget."""
  saved = conv._CHUNK_ELEMENTS
  conv._CHUNK_ELEMENTS = budget
  try:
    return build()
  finally:
    conv._CHUNK_ELEMENTS = saved


def _compare(build, iters: int, windows: int) -> dict[str, Any]:
  sides = {"whole": _with_budget(_OFF, build), "chunked": build()}
  records = bench.alternate(sides, [iters] * windows)
  out = {name: bench.summarise([r for r in records if r["side"] == name]) for name in sides}
  out["whole_over_chunked"] = (
    out["whole"]["ms_per_iter_median"] / out["chunked"]["ms_per_iter_median"]
  )
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
      strides = (stride, stride)
      per_example = size * size * cin + out_size * out_size * cout
      row = {
        "layer": name,
        "batch_size": batch,
        "chunks": conv._num_chunks(batch, per_example),
        "gflop_per_call": 2 * batch * out_size**2 * cin * cout * kernel**2 / 1e9,
      }
      row["kernel_grad"] = _compare(
        lambda x=x, g=g, shape=k.shape, s=strides: bench.CompiledCalls(
          lambda a, b: conv.conv_kernel_grad(a, b, shape, s), (x, g), _kernels()
        ),
        FLAGS.layer_iters,
        FLAGS.layer_windows,
      )
      row["input_grad"] = _compare(
        lambda g=g, k=k, shape=x.shape, s=strides: bench.CompiledCalls(
          lambda a, b: conv.conv_input_grad(a, b, shape, s), (g, k), _kernels()
        ),
        FLAGS.layer_iters,
        FLAGS.layer_windows,
      )
      rows.append(row)
      print(
        f"{name} B={batch} chunks={row['chunks']}: kernel grad "
        f"{row['kernel_grad']['whole']['ms_per_iter_median']:.1f} -> "
        f"{row['kernel_grad']['chunked']['ms_per_iter_median']:.1f} ms, input grad "
        f"{row['input_grad']['whole']['ms_per_iter_median']:.1f} -> "
        f"{row['input_grad']['chunked']['ms_per_iter_median']:.1f} ms",
        file=sys.stderr,
      )
  return rows


def iteration_rows() -> list[dict[str, Any]]:
  rows = []
  for spec in FLAGS.rows:
    what, batch = spec.split(":")
    objective, _, stabiliser = what.partition("+")
    cfg = bench.make_config(objective, int(batch), 64, 32, 3, stabiliser or "none")
    cfg.train.cpu_convolutions = _kernels()
    row = {"objective": objective, "stabilisers": stabiliser or "none", "batch_size": int(batch)}
    row.update(
      _compare(
        lambda cfg=cfg: bench.JaxTimer(cfg, warmup=2, devices=1, seed=0),
        FLAGS.row_iters,
        FLAGS.row_windows,
      )
    )
    rows.append(row)
    print(
      f"{spec}: {row['whole']['ms_per_iter_median']:.0f} -> "
      f"{row['chunked']['ms_per_iter_median']:.0f} ms/iter",
      file=sys.stderr,
    )
  return rows


def main(argv):
  del argv
  if FLAGS.chunk_elements:
    conv._CHUNK_ELEMENTS = FLAGS.chunk_elements
  report = {
    "device": bench.device_info(),
    "versions": bench.versions(),
    "chunk_elements": conv._CHUNK_ELEMENTS,
    "cpu_convolutions": _kernels(),
    "load_average_before": bench.load_average(),
    "layers": layer_rows() if FLAGS.layers else [],
    "rows": iteration_rows(),
    "load_average_after": bench.load_average(),
  }
  bench.write_report(report)


if __name__ == "__main__":
  app.run(main)
