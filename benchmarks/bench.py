r"""Steady-state speed of the compiled gan_jax training iteration, next to a PyTorch peer.

For each objective and batch size this builds the objective's config (DCGAN networks on
image_size x image_size x channels images, width C), compiles `gan_jax.train.
compile_train_iteration` and times it, then times `benchmarks/torch_peer.py` (the same
networks and iteration in PyTorch) on the same device kind, and prints one JSON document:

  python benchmarks/bench.py --objectives=non_saturating,wgan_gp --batch_sizes=64,256,1024 \
      --peer=both --out=/tmp/bench.json

Timing: the first call (compilation plus one iteration) is reported apart; after `--warmup`
iterations, `--iters` iterations are timed in `--windows` windows, each closed by waiting for
the device (`jax.block_until_ready`, `torch.cuda.synchronize`). Rows give ms/iter over all
timed iterations and the median of the windows' ms/iter (robust to a busy host); the ratio
peer/jax (> 1: gan_jax is faster) uses the medians. images/s counts the real images one
iteration consumes, n_critic * B.

The peer runs in this interpreter when torch is importable (a GPU image with JAX and torch),
else in a subprocess of `--peer_python` (default: /work/torchenv/bin/python), one per
(objective, batch size) so that its timings are taken right after the matching JAX ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[0] != _ROOT:
  sys.path.insert(0, _ROOT)  # gan_jax, without installing the package.

import jax
import numpy as np
from absl import app, flags, logging

from gan_jax import configs
from gan_jax import spec as spec_lib
from gan_jax import train as train_lib
from gan_jax.core import parallel

OBJECTIVES = ("minimax", "non_saturating", "lsgan", "wgan", "wgan_gp")
# The config (`gan_jax.configs`, configs/<name>.py) of each objective.
CONFIGS = {
  "minimax": "dcgan_minimax",
  "non_saturating": "dcgan",
  "lsgan": "lsgan",
  "wgan": "wgan",
  "wgan_gp": "wgan_gp",
}
DEFAULT_PEER_PYTHON = "/work/torchenv/bin/python"

FLAGS = flags.FLAGS
flags.DEFINE_list("objectives", list(OBJECTIVES), f"Objectives, from {OBJECTIVES}.")
flags.DEFINE_list("batch_sizes", ["64", "256", "1024"], "Global batch sizes B.")
flags.DEFINE_integer("width", 64, "Network width C (G: 4C-2C-C, D: C-2C-4C at 32x32).")
flags.DEFINE_integer("image_size", 32, "Image height and width.")
flags.DEFINE_integer("channels", 3, "Image channels.")
flags.DEFINE_integer("warmup", 5, "Untimed iterations, the first call (which compiles) included.")
flags.DEFINE_integer("iters", 50, "Timed iterations per (objective, batch size).")
flags.DEFINE_integer("windows", 5, "Timing windows the timed iterations are split into.")
flags.DEFINE_enum(
  "peer",
  "both",
  ["none", "eager", "compile", "both"],
  "PyTorch peer: eager, torch.compile of G and D, both, or none.",
)
flags.DEFINE_string(
  "peer_python",
  None,
  "Interpreter for a subprocess peer; default: this one if it has torch, "
  f"else {DEFAULT_PEER_PYTHON}.",
)
flags.DEFINE_string("peer_compile_mode", "default", "torch.compile mode of the peer.")
flags.DEFINE_integer(
  "devices",
  1,
  "Devices of the gan_jax mesh (0 = all). The peer uses one device, so "
  "the default compares one device with one device.",
)
flags.DEFINE_integer("seed", 0, "Initialisation seed.")
flags.DEFINE_list(
  "stabilisers",
  ["none"],
  "Stabiliser sets to time on top of each objective: none, or config.stabilisers "
  "values with '+' for ',' (e.g. lens, advas, lens+advas). The peer runs only "
  "for none.",
)
flags.DEFINE_string("out", None, "Also write the JSON document to this file.")


# ----------------------------------------------------------------------------- configs


def make_config(
  objective: str,
  batch_size: int,
  width: int,
  image_size: int,
  channels: int,
  stabilisers: str = "none",
):
  """The objective's config with the benchmark's image shape, width, batch size and
  stabilisers."""
  if objective not in CONFIGS:
    raise app.UsageError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
  cfg = configs.get(CONFIGS[objective])
  cfg.data.image_size = image_size
  cfg.data.channels = channels
  cfg.model.width = width
  cfg.train.batch_size = batch_size
  if cfg.get("stabilisers"):
    raise app.UsageError(
      f"config {CONFIGS[objective]!r} turns on stabilisers "
      f"{cfg.stabilisers!r}; the benchmark times the plain objective"
    )
  if stabilisers != "none":
    cfg.stabilisers = stabilisers.replace("+", ",")
  return cfg


def peer_settings(objective: str, cfg) -> dict[str, Any]:
  """What the PyTorch peer needs to mirror `cfg` (see torch_peer.DEFAULT_SETTINGS)."""
  if cfg.model.name != "dcgan" or cfg.model.generator_norm != "batch":
    raise ValueError("the peer implements the DCGAN networks with a BatchNorm generator")
  if cfg.train.ema_decay:
    raise ValueError("the peer keeps no EMA of G; set train.ema_decay = 0")

  def optim(section) -> dict[str, Any]:
    keys = ("name", "learning_rate", "b1", "b2", "eps", "decay")
    return {k: section[k] for k in keys}

  return {
    "n_critic": cfg.train.n_critic,
    "disc_norm": cfg.model.discriminator_norm,
    "init": cfg.model.init,
    "clip": cfg.objective.clip if objective == "wgan" else None,
    "gp_weight": cfg.objective.gp_weight if objective == "wgan_gp" else None,
    "real_label": cfg.objective.real_label,
    "z_dim": cfg.model.z_dim,
    "optim_g": optim(cfg.optim.generator),
    "optim_d": optim(cfg.optim.discriminator),
  }


# ----------------------------------------------------------------------------- gan_jax


def split_iterations(iters: int, windows: int) -> list[int]:
  """`iters` timed iterations as `windows` near-equal windows (at least one iteration each)."""
  windows = max(1, min(windows, iters))
  base, extra = divmod(iters, windows)
  return [base + (i < extra) for i in range(windows)]


def time_gan_jax(
  cfg, *, warmup: int, iters: int, windows: int, devices: int, seed: int
) -> dict[str, Any]:
  """Compiles and times the gan_jax iteration of `cfg`."""
  spec = spec_lib.build_spec(cfg, mesh=parallel.make_mesh(devices))
  start = time.perf_counter()
  # Reported apart (init_s); on CPU compiled without LLVM optimisation, see train.init_state.
  state = train_lib.init_state(spec, seed)
  init_s = time.perf_counter() - start
  shape = (spec.batches_per_iteration, spec.batch_size) + spec.image_shape
  images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  batch = {"image": jax.device_put(images, parallel.batch_sharding(spec.mesh, batch_dim=1))}
  step = train_lib.compile_train_iteration(spec)

  # Ahead-of-time lowering and compilation, timed apart; the executable is the one
  # `step(state, batch)` would build and run.
  start = time.perf_counter()
  lowered = step.lower(state, batch)
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start

  start = time.perf_counter()
  state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  first_s = time.perf_counter() - start
  for _ in range(max(warmup - 1, 0)):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))

  per_window = split_iterations(iters, windows)
  window_ms, total_s, cpu_s = [], 0.0, 0.0
  for n in per_window:
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
      # The state is donated: always rebind it.
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - start
    cpu_s += time.process_time() - start_cpu
    total_s += elapsed
    window_ms.append(1e3 * elapsed / n)
  finite = bool(all(np.all(np.isfinite(v)) for v in jax.device_get(metrics).values()))
  images_per_iter = spec.batches_per_iteration * spec.batch_size
  ms = 1e3 * total_s / sum(per_window)
  return {
    "init_s": init_s,
    "lower_s": lower_s,
    "compile_s": compile_s,
    "first_iteration_s": first_s,
    "ms_per_iter": ms,
    "ms_per_iter_median": float(np.median(window_ms)),
    "window_ms": window_ms,
    "cpu_ms_per_iter": 1e3 * cpu_s / sum(per_window),
    "iters": sum(per_window),
    "iters_per_s": 1e3 / ms,
    "images_per_s": images_per_iter * 1e3 / ms,
    "metrics_finite": finite,
    "mesh_devices": spec.mesh.size,
  }


# ----------------------------------------------------------------------------- peer


def torch_in_process() -> bool:
  return importlib.util.find_spec("torch") is not None


def peer_python() -> str | None:
  """The interpreter of a subprocess peer, or None when there is none."""
  if FLAGS.peer_python:
    return FLAGS.peer_python
  if torch_in_process():
    return sys.executable
  return DEFAULT_PEER_PYTHON if os.path.exists(DEFAULT_PEER_PYTHON) else None


def run_peer(
  objective: str, batch_size: int, settings: dict[str, Any], modes: list[str]
) -> dict[str, Any]:
  """Times the PyTorch peer for one (objective, batch size); returns torch_peer's report."""
  kwargs = dict(
    modes=modes,
    width=FLAGS.width,
    image_size=FLAGS.image_size,
    channels=FLAGS.channels,
    warmup=FLAGS.warmup,
    iters=FLAGS.iters,
    windows=FLAGS.windows,
    compile_mode=FLAGS.peer_compile_mode,
    seed=FLAGS.seed,
  )
  if torch_in_process() and not FLAGS.peer_python:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    torch_peer = importlib.import_module("torch_peer")
    report = torch_peer.run(
      [objective], [batch_size], settings={objective: settings}, log=logging.info, **kwargs
    )
    return {**report, "python_executable": sys.executable, "in_process": True}
  python = peer_python()
  if python is None:
    return {"error": f"no torch here and no {DEFAULT_PEER_PYTHON}; pass --peer_python"}
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py")
  cmd = [
    python,
    script,
    f"--objectives={objective}",
    f"--batch_sizes={batch_size}",
    f"--modes={','.join(modes)}",
    f"--width={FLAGS.width}",
    f"--image_size={FLAGS.image_size}",
    f"--channels={FLAGS.channels}",
    f"--warmup={FLAGS.warmup}",
    f"--iters={FLAGS.iters}",
    f"--windows={FLAGS.windows}",
    f"--compile_mode={FLAGS.peer_compile_mode}",
    f"--settings_json={json.dumps({objective: settings})}",
  ]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  for line in proc.stderr.splitlines()[-20:]:
    logging.info("peer: %s", line)
  if proc.returncode:
    return {"error": f"peer exited with {proc.returncode}: {proc.stderr[-1000:]}"}
  return {**json.loads(proc.stdout), "python_executable": python, "in_process": False}


# ----------------------------------------------------------------------------- report


def versions() -> dict[str, Any]:
  out = {"python": platform.python_version(), "jax": jax.__version__}
  for name in ("jaxlib", "flax", "optax", "numpy"):
    try:
      out[name] = importlib.import_module(name).__version__
    except (ImportError, AttributeError):
      out[name] = None
  return out


def device_info() -> dict[str, Any]:
  device = jax.devices()[0]
  return {
    "platform": device.platform,
    "device_kind": device.device_kind,
    "device_count": jax.device_count(),
    "host": platform.machine(),
    "host_processor": platform.processor() or None,
    "cpu_count": os.cpu_count(),
  }


def load_average() -> list[float] | None:
  """1, 5 and 15 minute load averages: how busy a shared host was during a measurement."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except (AttributeError, OSError):
    return None


def ratio(peer_row: dict[str, Any] | None, jax_row: dict[str, Any]) -> float | None:
  if not peer_row or "ms_per_iter_median" not in peer_row:
    return None
  return peer_row["ms_per_iter_median"] / jax_row["ms_per_iter_median"]


def benchmark() -> dict[str, Any]:
  """Runs every (objective, batch size) and returns the JSON-able report."""
  modes = {"none": [], "eager": ["eager"], "compile": ["compile"], "both": ["eager", "compile"]}[
    FLAGS.peer
  ]
  rows, peer_meta = [], None
  runs = [
    (o, int(b), st) for o in FLAGS.objectives for b in FLAGS.batch_sizes for st in FLAGS.stabilisers
  ]
  for objective, batch_size, stabilisers in runs:
    cfg = make_config(
      objective, batch_size, FLAGS.width, FLAGS.image_size, FLAGS.channels, stabilisers
    )
    logging.info("gan_jax %s B=%d stabilisers=%s", objective, batch_size, stabilisers)
    row = {
      "objective": objective,
      "batch_size": batch_size,
      "stabilisers": stabilisers,
      "n_critic": cfg.train.n_critic,
      "images_per_iter": cfg.train.n_critic * batch_size,
      "load_average_before": load_average(),
    }
    row["jax"] = time_gan_jax(
      cfg,
      warmup=FLAGS.warmup,
      iters=FLAGS.iters,
      windows=FLAGS.windows,
      devices=FLAGS.devices,
      seed=FLAGS.seed,
    )
    logging.info(
      "gan_jax %s B=%d: %.2f ms/iter", objective, batch_size, row["jax"]["ms_per_iter_median"]
    )
    if modes and stabilisers == "none":
      logging.info("peer %s B=%d %s", objective, batch_size, modes)
      report = run_peer(objective, batch_size, peer_settings(objective, cfg), modes)
      if "error" in report:
        row["peer_error"] = report["error"]
      else:
        peer_meta = {k: v for k, v in report.items() if k != "rows"}
        row["peer"] = {
          r["mode"]: {k: v for k, v in r.items() if k not in ("objective", "batch_size", "mode")}
          for r in report["rows"]
        }
        row["ratio_peer_over_jax"] = {mode: ratio(r, row["jax"]) for mode, r in row["peer"].items()}
        best = [r for r in (ratio(r, row["jax"]) for r in row["peer"].values()) if r]
        row["ratio_best_peer_over_jax"] = min(best) if best else None
    row["load_average_after"] = load_average()
    rows.append(row)
  return {
    "benchmark": "gan_jax DCGAN training iteration",
    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "device": device_info(),
    "versions": versions(),
    "settings": {
      "width": FLAGS.width,
      "image_size": FLAGS.image_size,
      "channels": FLAGS.channels,
      "warmup": FLAGS.warmup,
      "iters": FLAGS.iters,
      "windows": FLAGS.windows,
      "peer": FLAGS.peer,
      "devices": FLAGS.devices,
      "stabilisers": FLAGS.stabilisers,
      "ratio_basis": "ms_per_iter_median (peer / jax; > 1 means gan_jax faster)",
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
    },
    "peer": peer_meta,
    "rows": rows,
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  report = benchmark()
  text = json.dumps(report, indent=2)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  app.run(main)
