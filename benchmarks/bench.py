r"""Steady-state speed of the compiled gan_jax training iteration, next to a PyTorch peer.

For each objective and batch size this builds the objective's config (DCGAN networks, or
BEGAN's auto-encoder D and decoder G for `began`, on image_size x image_size x channels images,
width C), compiles `gan_jax.train.compile_train_iteration` and times it, then times
`benchmarks/torch_peer.py` (the same networks and iteration in PyTorch) on the same device
kind, and prints one JSON document:

  python benchmarks/bench.py --objectives=non_saturating,wgan_gp --batch_sizes=64,256,1024 \
      --peer=both --out=/tmp/bench.json
  python benchmarks/bench.py --objectives=began --batch_sizes=16,64 --peer=both

Timing: the first call (compilation plus one iteration) is reported apart; after `--warmup`
iterations, `--iters` iterations are timed in `--windows` windows, each closed by waiting for
the device (`jax.block_until_ready`, `torch.cuda.synchronize`). gan_jax and every peer mode
take turns window by window (window w of each before window w + 1 of any, the first of each
round rotating), and the host's 1-minute load average is recorded before every window, so a
ratio compares the two under the same conditions. A row with stabilisers (`--stabilisers`)
alternates its windows with the plain iteration of the same objective, batch size and dtype
(side "plain"), so its `ratio_over_plain` also comes from one run. Rows give ms/iter over all
timed iterations and the median of the windows' ms/iter; the ratio peer/jax (> 1: gan_jax is
faster) uses the medians. images/s counts the real images one iteration consumes, n_critic * B.

Distance to the machine's limit: each gan_jax row has its FLOPs per iteration (XLA's cost
analysis of the compiled iteration) and the GFLOP/s achieved, beside the machine's peak in the
row's activation dtype, the best rate of a plain (2048, 2048) matmul measured at the start and
the end of the run.

Precision: `--compute_dtypes=float32,bfloat16` adds bfloat16 rows (`train.compute_dtype`,
docs/precision.md); the peer's bfloat16 rows run its forward passes under
`torch.autocast(dtype=torch.bfloat16)`, parameters and optimiser states float32 on both sides.

The peer runs in this interpreter when torch is importable (a GPU image with JAX and torch),
else in a subprocess of `--peer_python` (default: /work/torchenv/bin/python) that serves the
windows on request (`torch_peer.py --serve`), one per (objective, batch size).
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
from gan_jax.core import parallel, xla_cpu

OBJECTIVES = ("minimax", "non_saturating", "lsgan", "wgan", "wgan_gp", "began")
# The config (`gan_jax.configs`, configs/<name>.py) of each objective.
CONFIGS = {
  "minimax": "dcgan_minimax",
  "non_saturating": "dcgan",
  "lsgan": "lsgan",
  "wgan": "wgan",
  "wgan_gp": "wgan_gp",
  "began": "began",
}
DEFAULT_PEER_PYTHON = "/work/torchenv/bin/python"
COMPUTE_DTYPES = tuple(spec_lib.COMPUTE_DTYPES)

FLAGS = flags.FLAGS
flags.DEFINE_list("objectives", list(OBJECTIVES), f"Objectives, from {OBJECTIVES}.")
flags.DEFINE_list("batch_sizes", ["64", "256", "1024"], "Global batch sizes B.")
flags.DEFINE_integer(
  "width", 64, "Network width C (DCGAN at 32x32: G 4C-2C-C, D C-2C-4C; BEGAN: n = C)."
)
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
flags.DEFINE_list(
  "compute_dtypes",
  ["float32"],
  "Activation dtypes (train.compute_dtype): float32 and/or bfloat16. The peer's bfloat16 rows "
  "use torch.autocast.",
)
flags.DEFINE_enum(
  "cpu_convolutions",
  None,
  list(xla_cpu.CONVOLUTION_KERNELS),
  "train.cpu_convolutions of the gan_jax rows (default: the configs', "
  f"{xla_cpu.DEFAULT_CONVOLUTION_KERNELS}); benchmarks/cpu_convolutions.py compares the two.",
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
  compute_dtype: str = "float32",
):
  """The objective's config with the benchmark's image shape, width, batch size, stabilisers
  and activation dtype."""
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
  cfg.train.compute_dtype = compute_dtype
  return cfg


def peer_settings(objective: str, cfg) -> dict[str, Any]:
  """What the PyTorch peer needs to mirror `cfg` (see torch_peer.DEFAULT_SETTINGS)."""
  if cfg.train.ema_decay:
    raise ValueError("the peer keeps no EMA of G; set train.ema_decay = 0")

  def optim(section) -> dict[str, Any]:
    keys = ("name", "learning_rate", "b1", "b2", "eps", "decay")
    return {k: section[k] for k in keys}

  if cfg.model.name == "began":
    if cfg.model.skip or cfg.get("stabilisers"):
      raise ValueError("the BEGAN peer has no skip connections or vanishing residuals")
    return {
      "model": "began",
      "compute_dtype": cfg.train.compute_dtype,
      "n_critic": cfg.train.n_critic,
      "init": cfg.model.init,
      "hidden_dim": cfg.model.hidden_dim,
      "z_dim": cfg.model.z_dim,
      "eta": cfg.model.eta,
      "gamma": cfg.objective.gamma,
      "lambda_k": cfg.objective.lambda_k,
      "k_init": cfg.objective.k_init,
      "optim_g": optim(cfg.optim.generator),
      "optim_d": optim(cfg.optim.discriminator),
    }
  if cfg.model.name != "dcgan" or cfg.model.generator_norm != "batch":
    raise ValueError("the peer implements the DCGAN networks with a BatchNorm generator")
  return {
    "compute_dtype": cfg.train.compute_dtype,
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


# Single convolution layers timed by conv_chunks.py and cpu_convolutions.py: (name, input
# channels, output channels, image size, kernel, stride); DCGAN's D at 32x32x3, C = 64, and the
# lens's 3x3 layer.
CONV_LAYERS = (
  ("dcgan_d1 3->64", 3, 64, 32, 4, 2),
  ("dcgan_d2 64->128", 64, 128, 16, 4, 2),
  ("dcgan_d3 128->256", 128, 256, 8, 4, 2),
  ("lens 32->32", 32, 32, 32, 3, 1),
)


class CompiledCalls:
  """A compiled function of fixed arguments, its convolutions on `kernels` on CPU
  (train.cpu_convolutions), timed window by window like JaxTimer."""

  def __init__(self, fn, args, kernels: str):
    options = xla_cpu.compiler_options(jax.devices()[0].platform, kernels)
    self.fn = jax.jit(fn, compiler_options=options).lower(*args).compile()
    self.args = args
    jax.block_until_ready(self.fn(*args))

  def window(self, iters: int) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
      out = self.fn(*self.args)
    jax.block_until_ready(out)
    return time.perf_counter() - start, time.process_time() - start_cpu


def split_iterations(iters: int, windows: int) -> list[int]:
  """`iters` timed iterations as `windows` near-equal windows (at least one iteration each)."""
  windows = max(1, min(windows, iters))
  base, extra = divmod(iters, windows)
  return [base + (i < extra) for i in range(windows)]


class JaxTimer:
  """The compiled gan_jax iteration of `cfg`, ready to be timed window by window.

  Construction initialises the state, lowers and compiles the iteration ahead of time (the
  executable `step(state, batch)` would build), runs the first iteration and the warm-up.
  `window(n)` times n more iterations.
  """

  def __init__(self, cfg, *, warmup: int, devices: int, seed: int):
    spec = spec_lib.build_spec(cfg, mesh=parallel.make_mesh(devices))
    start = time.perf_counter()
    # Reported apart (init_s); on CPU compiled without LLVM optimisation, see train.init_state.
    self.state = train_lib.init_state(spec, seed)
    init_s = time.perf_counter() - start
    shape = (spec.batches_per_iteration, spec.batch_size) + spec.image_shape
    images = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    self.batch = {"image": jax.device_put(images, parallel.batch_sharding(spec.mesh, batch_dim=1))}
    step = train_lib.compile_train_iteration(spec)
    start = time.perf_counter()
    lowered = step.lower(self.state, self.batch)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    self.compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    self._run(1)
    first_s = time.perf_counter() - start
    self._run(max(warmup - 1, 0))
    self.info = {
      "init_s": init_s,
      "lower_s": lower_s,
      "compile_s": compile_s,
      "first_iteration_s": first_s,
      "flops_per_iter": flops(self.compiled),
      "mesh_devices": spec.mesh.size,
    }
    self.images_per_iter = spec.batches_per_iteration * spec.batch_size

  def _run(self, iters: int) -> None:
    for _ in range(iters):
      # The state is donated: always rebind it.
      self.state, self.metrics = self.compiled(self.state, self.batch)
    jax.block_until_ready((self.state, self.metrics))

  def window(self, iters: int) -> tuple[float, float]:
    """Seconds of wall clock and of process CPU time for `iters` iterations."""
    start, start_cpu = time.perf_counter(), time.process_time()
    self._run(iters)
    return time.perf_counter() - start, time.process_time() - start_cpu

  def finite(self) -> bool:
    return bool(all(np.all(np.isfinite(v)) for v in jax.device_get(self.metrics).values()))


def flops(compiled) -> float | None:
  """FLOPs of one call of a compiled function, from XLA's cost analysis (None if absent)."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(analysis, (list, tuple)):  # one entry per program in older JAX
    analysis = analysis[0] if analysis else None
  value = (analysis or {}).get("flops")
  return float(value) if value else None


def peak_gflops(n: int = 2048, repeats: int = 5, dtype: str = "float32") -> dict[str, Any]:
  """The machine's matmul rate in `dtype`: the best of `repeats` timed (n, n) @ (n, n)
  products on one device, the plain large matmul against which the iterations' GFLOP/s are
  read."""
  a = jax.device_put(np.random.default_rng(0).standard_normal((n, n), np.float32)).astype(dtype)
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a))
    best = min(best, time.perf_counter() - start)
  return {"n": n, "dtype": dtype, "gflops": 2 * n**3 / best / 1e9, "load_average": load_average()}


def summarise(windows: list[dict[str, Any]]) -> dict[str, Any]:
  """ms/iter over all of one side's windows, their median, CPU ms/iter and the load seen."""
  iters = sum(w["iters"] for w in windows)
  window_ms = [w["ms_per_iter"] for w in windows]
  ms = sum(w["ms_per_iter"] * w["iters"] for w in windows) / iters
  return {
    "ms_per_iter": ms,
    "ms_per_iter_median": float(np.median(window_ms)),
    "window_ms": window_ms,
    "window_load_1min": [w["load_1min"] for w in windows],
    "cpu_ms_per_iter": sum(w["cpu_ms_per_iter"] * w["iters"] for w in windows) / iters,
    "iters": iters,
    "iters_per_s": 1e3 / ms,
  }


def alternate(sides: dict[str, Any], per_window: list[int]) -> list[dict[str, Any]]:
  """Times the sides ({name: object with window(n) -> (s, cpu_s)}) in turns: window w of every
  side before window w + 1 of any, the side going first rotating, the 1-minute load average
  recorded before each window. Returns one record per (window, side)."""
  names = list(sides)
  records = []
  for w, n in enumerate(per_window):
    for name in names[w % len(names) :] + names[: w % len(names)]:
      load = load_average()
      sec, cpu = sides[name].window(n)
      records.append(
        {
          "window": w,
          "side": name,
          "iters": n,
          "ms_per_iter": 1e3 * sec / n,
          "cpu_ms_per_iter": 1e3 * cpu / n,
          "load_1min": load[0] if load else None,
        }
      )
      logging.info("window %d %s: %.1f ms/iter (load %s)", w, name, 1e3 * sec / n, load)
  return records


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


class _SubprocessWindow:
  """One mode of a subprocess peer (torch_peer.py --serve): window(n) asks it for n iterations."""

  def __init__(self, proc: subprocess.Popen, mode: str):
    self.proc, self.mode = proc, mode

  def window(self, iters: int) -> tuple[float, float]:
    self.proc.stdin.write(json.dumps({"mode": self.mode, "iters": iters}) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"the peer exited with {self.proc.wait()}")
    answer = json.loads(line)
    return answer["s"], answer["cpu_s"]


def start_peer(
  objective: str, batch_size: int, settings: dict[str, Any], modes: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]], Any]:
  """Builds and warms up the PyTorch peer of one (objective, batch size), one per mode.

  Returns (the peer's description, {mode: object with window(n)}, {mode: first-iteration
  record or {"error"}}, a function that releases the peer). In this interpreter when it has
  torch (and no --peer_python), else in a subprocess serving windows on request.
  """
  kwargs = dict(
    modes=modes,
    width=FLAGS.width,
    image_size=FLAGS.image_size,
    channels=FLAGS.channels,
    warmup=FLAGS.warmup,
    compile_mode=FLAGS.peer_compile_mode,
    seed=FLAGS.seed,
  )
  if torch_in_process() and not FLAGS.peer_python:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    torch_peer = importlib.import_module("torch_peer")
    meta, timers, starts = torch_peer.prepare(
      objective, batch_size, settings={objective: settings}, **kwargs
    )
    meta = {**meta, "python_executable": sys.executable, "in_process": True}
    return meta, timers, starts, lambda: None
  python = peer_python()
  if python is None:
    raise RuntimeError(f"no torch here and no {DEFAULT_PEER_PYTHON}; pass --peer_python")
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py")
  cmd = [
    python,
    script,
    "--serve",
    f"--objectives={objective}",
    f"--batch_sizes={batch_size}",
    f"--modes={','.join(modes)}",
    f"--width={FLAGS.width}",
    f"--image_size={FLAGS.image_size}",
    f"--channels={FLAGS.channels}",
    f"--warmup={FLAGS.warmup}",
    f"--compile_mode={FLAGS.peer_compile_mode}",
    f"--settings_json={json.dumps({objective: settings})}",
  ]
  proc = subprocess.Popen(  # pylint: disable=consider-using-with
    cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  line = proc.stdout.readline()
  if not line:
    raise RuntimeError(f"the peer exited with {proc.wait()}: {proc.stderr.read()[-1000:]}")
  first = json.loads(line)
  meta = {**first["peer"], "python_executable": python, "in_process": False}
  starts = first["starts"]
  timers = {m: _SubprocessWindow(proc, m) for m in modes if "error" not in starts[m]}

  def close():
    proc.stdin.close()
    proc.wait(timeout=60)

  return meta, timers, starts, close


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


def time_row(
  cfg, objective: str, stabilisers: str, modes: list[str], plain: JaxTimer | None = None
) -> tuple[dict, dict | None, JaxTimer]:
  """Times gan_jax and, for plain objectives, the peer's modes in alternating windows; a
  stabilised row alternates with `plain`, the plain iteration's timer of the same objective,
  batch size and dtype, when given.

  Returns the row, the peer's description (None without a peer) and gan_jax's timer.
  """
  batch_size = cfg.train.batch_size
  row = {
    "objective": objective,
    "batch_size": batch_size,
    "stabilisers": stabilisers,
    "compute_dtype": cfg.train.compute_dtype,
    "n_critic": cfg.train.n_critic,
    "images_per_iter": cfg.train.n_critic * batch_size,
    "load_average_before": load_average(),
  }
  logging.info(
    "gan_jax %s B=%d stabilisers=%s %s: compiling",
    objective,
    batch_size,
    stabilisers,
    cfg.train.compute_dtype,
  )
  jax_timer = JaxTimer(cfg, warmup=FLAGS.warmup, devices=FLAGS.devices, seed=FLAGS.seed)
  row["jax"] = dict(jax_timer.info)
  sides: dict[str, Any] = {"jax": jax_timer}
  if plain is not None and stabilisers != "none":
    sides["plain"] = plain
  peer_meta, close = None, None
  if modes and stabilisers == "none":
    logging.info("peer %s B=%d %s: warming up", objective, batch_size, modes)
    row["peer_settings"] = peer_settings(objective, cfg)
    try:
      peer_meta, timers, starts, close = start_peer(
        objective, batch_size, row["peer_settings"], modes
      )
      row["peer"] = {mode: dict(starts[mode]) for mode in modes}
      sides.update(timers)
    except RuntimeError as e:
      row["peer_error"] = str(e)
  try:
    row["windows"] = alternate(sides, split_iterations(FLAGS.iters, FLAGS.windows))
  finally:
    if close is not None:
      close()
  for name in sides:
    summary = summarise([r for r in row["windows"] if r["side"] == name])
    if name == "plain":
      # The plain iteration timed beside this one: the cost of the stabilisers in one run.
      row["plain_alternating"] = summary
      continue
    side = row["jax"] if name == "jax" else row["peer"][name]
    side.update(summary, images_per_s=row["images_per_iter"] * 1e3 / summary["ms_per_iter"])
  if "plain_alternating" in row:
    row["ratio_over_plain"] = (
      row["jax"]["ms_per_iter_median"] / row["plain_alternating"]["ms_per_iter_median"]
    )
  row["jax"]["metrics_finite"] = jax_timer.finite()
  if row.get("peer"):
    row["ratio_peer_over_jax"] = {m: ratio(r, row["jax"]) for m, r in row["peer"].items()}
    best = [r for r in row["ratio_peer_over_jax"].values() if r]
    row["ratio_best_peer_over_jax"] = min(best) if best else None
  row["load_average_after"] = load_average()
  return row, peer_meta, jax_timer


def benchmark() -> dict[str, Any]:
  """Runs every (objective, batch size, stabilisers) and returns the JSON-able report."""
  modes = {"none": [], "eager": ["eager"], "compile": ["compile"], "both": ["eager", "compile"]}[
    FLAGS.peer
  ]
  for dtype in FLAGS.compute_dtypes:
    if dtype not in COMPUTE_DTYPES:
      raise app.UsageError(f"unknown compute dtype {dtype!r}; valid: {', '.join(COMPUTE_DTYPES)}")
  peaks = [peak_gflops(dtype=dt) for dt in FLAGS.compute_dtypes]
  rows, peer_meta = [], None
  runs = [
    (o, int(b), st, dt)
    for o in FLAGS.objectives
    for b in FLAGS.batch_sizes
    for dt in FLAGS.compute_dtypes
    # The plain iteration first: the stabilised rows alternate their windows with it.
    for st in sorted(FLAGS.stabilisers, key=lambda st: st != "none")
  ]
  plain_timers: dict[tuple[str, int, str], JaxTimer] = {}
  for objective, batch_size, stabilisers, dtype in runs:
    cfg = make_config(
      objective, batch_size, FLAGS.width, FLAGS.image_size, FLAGS.channels, stabilisers, dtype
    )
    if FLAGS.cpu_convolutions:
      cfg.train.cpu_convolutions = FLAGS.cpu_convolutions
    key = (objective, batch_size, dtype)
    row, meta, timer = time_row(cfg, objective, stabilisers, modes, plain_timers.get(key))
    if stabilisers == "none":
      # Kept for the stabilised rows of the same objective, batch size and dtype.
      plain_timers = {key: timer}
    peer_meta = meta or peer_meta
    rows.append(row)
    logging.info(
      "%s B=%d %s %s: gan_jax %.1f ms/iter, best peer / gan_jax %s",
      objective,
      batch_size,
      stabilisers,
      dtype,
      row["jax"]["ms_per_iter_median"],
      row.get("ratio_best_peer_over_jax"),
    )
  peaks += [peak_gflops(dtype=dt) for dt in FLAGS.compute_dtypes]
  peak = {dt: max(p["gflops"] for p in peaks if p["dtype"] == dt) for dt in FLAGS.compute_dtypes}
  for row in rows:
    jax_row = row["jax"]
    if jax_row["flops_per_iter"]:
      achieved = jax_row["flops_per_iter"] / jax_row["ms_per_iter_median"] / 1e6
      # Each row against the matmul peak of its own activation dtype.
      jax_row.update(gflops_per_s=achieved, fraction_of_peak=achieved / peak[row["compute_dtype"]])
  return {
    "benchmark": "gan_jax training iteration",
    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "device": device_info(),
    "versions": versions(),
    "machine_peak": {
      "gflops": peak.get("float32", peak[FLAGS.compute_dtypes[0]]),
      "gflops_by_dtype": peak,
      "measurements": peaks,
    },
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
      "compute_dtypes": FLAGS.compute_dtypes,
      "ratio_basis": "ms_per_iter_median (peer / jax; > 1 means gan_jax faster)",
      "timing": "gan_jax and each peer mode alternate windows within a row",
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "cpu_convolutions": FLAGS.cpu_convolutions or xla_cpu.DEFAULT_CONVOLUTION_KERNELS,
      "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
    },
    "peer": peer_meta,
    "rows": rows,
  }


def write_report(report: dict[str, Any]) -> None:
  """Prints the JSON document and also writes it to --out if given (NumPy values as lists)."""
  text = json.dumps(report, indent=2, default=lambda v: np.asarray(v).tolist())
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  print(text)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  write_report(benchmark())


if __name__ == "__main__":
  app.run(main)
