"""The training loop: `train_and_evaluate(config, workdir)`.

Outputs under `workdir`:
  checkpoints/       orbax checkpoints (latest `train.keep_checkpoints`), resumed automatically.
  checkpoints_best/  the checkpoint with the best `eval.best_metric` so far (with eval.every).
  metrics.jsonl      one JSON object per log step; a resume from step N first drops the lines
                     after step N (written after that checkpoint by the interrupted run).
  tensorboard/       TensorBoard event files (scalars and sample grids); a resumed run's file
                     starts with a marker that hides the earlier files' steps after N.
  samples/           PNG grids of G(z) for a fixed z, every `train.sample_every` steps, each
                     panel under its name (e.g. real, lensed, generated).
  config.json        the config of the latest start or resume.
  configs/           config_step<N>.json: the config that a start (N = 0) or a resume from
                     step N ran with, so it stays known which config trained which steps
                     (config_before_step<N>.json: the config.json of a run that had no
                     history yet, resumed at step N).

In a multi-process run (after jax.distributed.initialize(); docs/multihost.md) every process
calls this with the same config and workdir: each feeds its rows of every batch, all of them
save the checkpoints together, and process 0 alone writes the other outputs.

Every input is checked before anything is written: the config (`spec.build_spec`), the data
source and the workdir; a bad one raises ConfigError, FileNotFoundError, ValueError or OSError
naming the field or file. SIGINT and SIGTERM during training save a checkpoint at the current
step and raise TrainingInterrupted (with several processes, all of them at the same step).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import evaluation, sampling
from gan_jax import images as images_lib
from gan_jax import spec as spec_lib
from gan_jax import writers as writers_lib
from gan_jax.core import parallel, xla_cpu
from gan_jax.core.step import train_iteration
from gan_jax.core.train_state import TrainState, create_train_state
from gan_jax.images import images_to_float
from gan_jax.periodic import PeriodicAction


class NonFiniteError(FloatingPointError):
  """A loss or norm became NaN or Inf; training stopped before saving it."""


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM stopped training after a checkpoint of the current step was saved.

  Attributes:
    signum: the signal.
    step: the last completed step (the checkpoint's).
    exit_code: 128 + signum, the shell's code for a process the signal stopped.
  """

  def __init__(self, signum: int, step: int, checkpoint_dir: str):
    self.signum, self.step = signum, step
    self.exit_code = 128 + signum
    super().__init__(
      f"{signal.Signals(signum).name} at step {step}; checkpoint saved in {checkpoint_dir}, "
      "the same command resumes from it"
    )


class StopRequests:
  """While entered, SIGINT and SIGTERM only record a request to stop (`signum`), which the
  training loop checks once per iteration (`stop_after`); a second SIGINT raises
  KeyboardInterrupt at once.

  In a multi-process run every process must stop at the same step, as the checkpoint there is
  saved by all of them together, but a signal may reach the processes at different steps, or
  only one of them (a shell's Ctrl-C on one host). A process that received one announces a
  stop step a few steps ahead in JAX's distributed key-value store; every process reads the
  store once per iteration and stops at the earliest step announced.

  The previous handlers are restored on exit. Outside the main thread, where Python cannot
  install handlers, signals keep their handlers and `signum` stays None.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)
  # Steps from a signal to the announced stop. Processes are at most two iterations apart
  # (each reads the previous iteration's metrics, which need every process's part of it), so
  # all of them read the announcement before they reach that step.
  MARGIN = 4
  KEY = "gan_jax/stop/"

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}
    self._announced = False

  def stop_after(self, step: int) -> bool:
    """Whether to stop (after saving a checkpoint) after iteration `step`: a signal was
    received, or in a multi-process run, `step` is the stop step a process announced."""
    if jax.process_count() == 1:
      return self.signum is not None
    # The client of jax.distributed.initialize(); JAX has no public accessor for it.
    from jax._src import distributed  # pylint: disable=g-import-not-at-top

    client = distributed.global_state.client
    if self.signum is not None and not self._announced:
      stop_at = f"{step + self.MARGIN} {self.signum}"
      client.key_value_set(f"{self.KEY}{jax.process_index()}", stop_at)
      self._announced = True
    announced = [
      tuple(int(v) for v in value.split()) for _, value in client.key_value_dir_get(self.KEY)
    ]
    if not announced:
      return False
    stop_at, signum = min(announced)
    if step < stop_at:
      return False
    self.signum = self.signum or signum
    return True

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self.signum is None:
      self.signum = signum
      # Plain writes: a signal handler must not take the logging module's locks.
      sys.stderr.write(
        f"{signal.Signals(signum).name}: saving a checkpoint and stopping after this step "
        "(with several processes: a few steps on, all at the same step; SIGINT again aborts "
        "at once)\n"
      )

  def __enter__(self) -> StopRequests:
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for s, handler in self._previous.items():
      # None: the handler was not installed from Python; the default is the closest.
      signal.signal(s, signal.SIG_DFL if handler is None else handler)
    self._previous = {}


def check_workdir(workdir: str) -> None:
  """Checks that `workdir` is, or can be created as, a writable folder; creates nothing.

  Raises:
    NotADirectoryError: `workdir`, or the nearest existing folder above it, is a file.
    PermissionError: that folder is not writable.
  """
  if "://" in workdir:  # a remote file system: nothing to check locally
    return
  path = os.path.abspath(workdir)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
    raise NotADirectoryError(f"workdir {workdir} {what}, not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    what = "is not writable" if existing == path else f"cannot be created in {existing}"
    raise PermissionError(f"workdir {workdir} {what} (permission denied or read-only)")


def write_config(workdir: str, config_dict: Mapping[str, Any], step: int) -> None:
  """Writes the config a run starts (step 0) or resumes (step N) with: config.json, the
  latest, and configs/config_step<N>.json, one per start, which record what trained which
  steps (each config trained the steps from its N to the next record's)."""
  text = json.dumps(config_dict, indent=2)
  history = os.path.join(workdir, "configs")
  latest = os.path.join(workdir, "config.json")
  if step and os.path.isfile(latest) and not os.path.isdir(history):
    # A run from before the history was kept: its config.json is the only record of the
    # config that trained the steps before this resume.
    os.makedirs(history)
    shutil.copyfile(latest, os.path.join(history, f"config_before_step{step:07d}.json"))
  os.makedirs(history, exist_ok=True)
  for path in (os.path.join(history, f"config_step{step:07d}.json"), latest):
    # Written whole and renamed, so a run killed while writing leaves the previous file.
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(path + ".tmp", path)


def compile_train_iteration(spec: spec_lib.RunSpec):
  """The jitted iteration on spec.mesh: state replicated and donated, batch split on B; on CPU
  its convolutions run on the kernels of spec.cpu_convolutions (`gan_jax.core.xla_cpu`)."""
  replicated = parallel.replicated(spec.mesh)
  return jax.jit(
    functools.partial(train_iteration, spec=spec),
    in_shardings=(replicated, parallel.batch_sharding(spec.mesh, batch_dim=1)),
    out_shardings=(replicated, replicated),
    donate_argnums=(0,),
    compiler_options=xla_cpu.compiler_options(
      spec.mesh.devices.flat[0].platform, spec.cpu_convolutions
    ),
  )


def init_state(
  spec: spec_lib.RunSpec, seed: int, batch: Mapping[str, Any] | None = None
) -> TrainState:
  """A fresh TrainState, replicated over spec.mesh.

  Args:
    spec: the RunSpec.
    seed: the run's seed.
    batch: a real batch {"image": (B, H, W, C)} for games that keep init-time data.
  """
  init = jax.jit(
    functools.partial(create_train_state, spec, seed), out_shardings=parallel.replicated(spec.mesh)
  ).lower(batch)
  # Initialisation runs once; on CPU, LLVM's optimisation of its random-number code took ~90 %
  # of the time to the first step (9-14 s for a tiny model, ~1 s without).
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return init.compile(compiler_options=options)(batch)


def abstract_state(
  spec: spec_lib.RunSpec, seed: int, batch: Mapping[str, Any] | None = None
) -> TrainState:
  """Shapes, dtypes and shardings of the TrainState, without allocating it (`batch` defaults
  to the shape of one real batch)."""
  if batch is None:
    batch = {"image": jax.ShapeDtypeStruct((spec.batch_size,) + spec.image_shape, jnp.float32)}
  shapes = jax.eval_shape(functools.partial(create_train_state, spec, seed), batch)
  sharding = parallel.replicated(spec.mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def check_finite(
  step: int, metrics: Mapping[str, Any], checkpoint_dir: str, last_good: int | None
) -> None:
  """Raises NonFiniteError naming the step and metric if any metric is NaN or Inf."""
  bad = {k: float(v) for k, v in metrics.items() if not np.all(np.isfinite(v))}
  if bad:
    name = sorted(bad)[0]
    where = (
      f"the last good checkpoint (step {last_good}) in {checkpoint_dir} is intact"
      if last_good is not None
      else "no checkpoint had been written yet"
    )
    raise NonFiniteError(
      f"non-finite {name} = {bad[name]} at step {step} (all non-finite: "
      f"{sorted(bad)}); training stopped and {where}."
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, handle_signals: bool = True
) -> TrainState:
  """Trains the GAN of `config`, resuming from the latest checkpoint in `workdir`.

  The config, the data and the workdir are checked before anything is written to `workdir`.

  Args:
    config: the run's config.
    workdir: the folder of the run's outputs (created if needed).
    handle_signals: during training, turn SIGINT and SIGTERM into a checkpoint at the current
      step and TrainingInterrupted (in the main thread only).

  Returns:
    The final TrainState.

  Raises:
    ConfigError: an invalid config value, or a workdir whose checkpoints another config wrote.
    FileNotFoundError: the dataset's files are missing.
    ValueError: the dataset's files are corrupt or inconsistent.
    OSError: the workdir cannot be written, or a data file cannot be read.
    NonFiniteError: a loss or norm became NaN or Inf.
    TrainingInterrupted: SIGINT or SIGTERM stopped training; a checkpoint was saved.
  """
  spec = spec_lib.build_spec(config)
  check_workdir(workdir)
  train_cfg = config.train
  seed = config.seed
  is_main = jax.process_index() == 0
  config_dict = checkpoint_lib.config_to_dict(config)

  # Built before anything is written, so that a bad eval section leaves the workdir untouched.
  # Each process evaluates whole on its own devices (the evaluators' inputs and outputs are
  # host arrays); the results of process 0 are the ones used (`evaluate` below).
  evaluator = evaluation.build_evaluator(config, parallel.local_mesh(spec.mesh))
  source = data_lib.load_source(config.data.to_dict(), seed)
  # Plain batches, or with data.num_labels > 0 the semi-supervised game's labelled and
  # unlabelled streams (gan_jax.data.semi_supervised documents the batch layout).
  batches = data_lib.make_batches(
    config.data.to_dict(),
    source,
    spec.batch_size,
    seed,
    num_classes=config.model.get("num_classes") if "model" in config else None,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  logging.info(
    "dataset %s/%s: %d examples, %d batches per epoch",
    config.data.source,
    config.data.name,
    len(source),
    batches.per_epoch,
  )

  # The first examples of the training set (a game's data-dependent initialisation uses them).
  init_examples = min(spec.init_examples or spec.batch_size, len(source))
  # Host arrays: the same value in every process, which a multi-process jit takes as replicated.
  init_batch = {
    "image": np.asarray(images_to_float(jnp.asarray(source[np.arange(init_examples)]["image"])))
  }
  checkpoints = checkpoint_lib.Checkpointer(
    os.path.join(workdir, "checkpoints"), keep=train_cfg.keep_checkpoints, config=config_dict
  )
  last_good = checkpoints.latest_step()
  if last_good is not None:
    state = checkpoints.restore(abstract_state(spec, seed, init_batch))
    logging.info("resumed from step %d", last_good)
  else:
    state = init_state(spec, seed, init_batch)
  start = int(state.step)
  if start >= train_cfg.steps:
    logging.info("the checkpoint is at step %d >= train.steps; nothing to train", start)
  elif is_main:
    write_config(workdir, config_dict, start)

  best_checkpoints = None
  if evaluator is not None and evaluator.best_metric:
    best_checkpoints = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints_best"),
      keep=1,
      config=config_dict,
      metric=(evaluator.best_metric, evaluator.best_mode),
    )

  progress = writers_lib.Progress(start, train_cfg.steps) if is_main else None
  writer = writers_lib.MultiWriter(
    [
      writers_lib.ConsoleWriter(train_cfg.steps, progress=progress),
      # Both drop (or hide) what an interrupted run logged after the checkpoint at `start`.
      writers_lib.JsonlWriter(os.path.join(workdir, "metrics.jsonl"), start=start),
      writers_lib.TensorBoardWriter(os.path.join(workdir, "tensorboard"), start=start),
    ]
    if is_main
    else []
  )

  put = functools.partial(
    data_lib.put_global,
    sharding=parallel.batch_sharding(spec.mesh, batch_dim=1),
    global_batch_size=spec.batch_size,
  )
  grid_inputs = parallel.to_host(
    sampling.fixed_inputs(spec, seed, train_cfg.num_samples, sampling.GRID)
  )
  real_images = np.asarray(
    images_to_float(
      jnp.asarray(source[np.arange(min(train_cfg.num_samples, len(source)))]["image"])
    )
  )

  def compile_for(step):
    """The spec, compiled iteration and image-panel function that apply from `step` on."""
    run_spec = spec_lib.build_spec(config, mesh=spec.mesh, step=step) if step else spec
    return run_spec, compile_train_iteration(run_spec), sampling.make_panels(run_spec)

  spec, step_fn, panels = compile_for(start)
  # Compiled once, reused by every evaluation of a classifier.
  # What the evaluator is handed (a sample, classification or translation function), and its
  # compiled core, reused by every evaluation.
  needs = getattr(evaluator, "needs", "samples")
  compiled = sampling.make_compiled(needs, spec) if evaluator is not None else None
  # Metrics of the steps since the last log line; it starts empty, so the first line after a
  # resume from step N averages the steps after N only (fewer than train.log_every when N is
  # not a multiple of it).
  history: list[Mapping[str, np.ndarray]] = []
  rate = writers_lib.RateMeter(start)
  pending = None  # (step, device metrics) of the last iteration, checked one step late

  def check_pending():
    """Checks the last iteration's metrics for NaN/Inf and adds them to the log history."""
    nonlocal pending
    if pending is not None:
      history.append(_check(pending, checkpoints.directory, last_good))
      if progress is not None:
        progress.update(pending[0])
      if pending[0] == start + 1:
        rate.reset(start + 1)  # the logged rate leaves out the first iteration's compilation
      pending = None

  def write_log(step):
    nonlocal history
    means = {k: float(np.mean([h[k] for h in history])) for k in history[-1]}
    means["perf/steps_per_sec"] = rate(step)
    writer.write_scalars(step, means)
    history = []

  def save_samples(step):
    # Every process takes part (a panel split over processes is gathered); process 0 writes.
    # As a list: a dict would come back with sorted keys, losing the panels' order.
    out = panels(state, grid_inputs, real_images)
    images = dict(zip(out, parallel.to_host(list(out.values()))))
    if is_main:
      grids = {k: images_lib.make_grid(v) for k, v in images.items()}
      images_lib.save_png(
        os.path.join(workdir, "samples", f"step_{step:07d}.png"),
        # Each panel named (e.g. real | lensed | generated); TensorBoard names them by tag.
        images_lib.side_by_side(list(grids.values()), labels=list(grids)),
      )
      writer.write_images(step, {f"samples/{k}": v for k, v in grids.items()})

  def evaluate(step):
    results = evaluator(sampling.evaluation_fns(needs, spec, state, seed, compiled=compiled), step)
    # Process 0's values everywhere, so that every process keeps the same best checkpoint.
    results = parallel.broadcast_scalars(results)
    writer.write_scalars(step, results)
    if best_checkpoints is not None:
      best_checkpoints.save(step, state, metrics=results)

  def save_checkpoint(step):
    nonlocal last_good
    checkpoints.save(step, state)
    last_good = step

  last = train_cfg.steps
  # In this order after an iteration; the metrics of the iteration are checked for NaN/Inf
  # before any action but the sample grid runs, so no checkpoint holds a non-finite state.
  actions = [
    PeriodicAction("log", train_cfg.log_every, write_log, last),
    PeriodicAction("samples", train_cfg.sample_every, save_samples, last),
  ]
  if evaluator is not None:
    actions.append(PeriodicAction("evaluate", config.eval.every, evaluate, last))
  actions.append(PeriodicAction("checkpoint", train_cfg.checkpoint_every, save_checkpoint, last))
  data_iter = data_lib.iterate(
    batches, start, spec.batches_per_iteration, put, prefetch=train_cfg.prefetch
  )
  if progress is not None and start < last:
    devices = list(spec.mesh.devices.flat)
    kind = devices[0].device_kind
    progress.begin(f"{len(devices)} {kind} device{'s' if len(devices) > 1 else ''}")
  stop = StopRequests() if handle_signals else None
  # Entered around the clean-up too: a second SIGINT while a checkpoint is saved aborts.
  with stop or contextlib.nullcontext():
    try:
      for step in range(start + 1, last + 1):
        if spec.rebuild_at is not None and step - 1 >= spec.rebuild_at:
          spec, step_fn, panels = compile_for(step - 1)
          logging.info("step %d: the run's spec changed; recompiled", step - 1)
        state, metrics = step_fn(state, next(data_iter))
        # A background save that failed (e.g. a full disk) is reported now, naming its step.
        for c in (checkpoints, best_checkpoints):
          if c is not None:
            c.poll()
        # Checking the previous iteration's metrics while this one runs keeps the device busy.
        check_pending()
        pending = (step, metrics)
        due = [a for a in actions if a.due(step)]
        if any(a.name != "samples" for a in due):
          check_pending()
        for action in due:
          action(step)
        if stop is not None and step < last and stop.stop_after(step):
          check_pending()
          if last_good != step:
            save_checkpoint(step)
          raise TrainingInterrupted(stop.signum, step, checkpoints.directory)
    finally:
      failing = sys.exc_info()[1] is not None
      cleanups = [data_iter.close]
      for c in (checkpoints, best_checkpoints):
        if c is not None:
          cleanups += [c.wait, c.close]
      cleanups.append(writer.close)
      for cleanup in cleanups:
        # While an error propagates (e.g. a full disk), the clean-up's own errors must not
        # replace it: they are logged, and it is reported.
        try:
          cleanup()
        except Exception as e:  # pylint: disable=broad-except
          if not failing:
            raise
          logging.warning("while stopping after an error: %s", " ".join(str(e).split())[:200])
  return state


def _check(pending, checkpoint_dir, last_good) -> dict[str, np.ndarray]:
  step, metrics = pending
  metrics = parallel.to_host(metrics)
  check_finite(step, metrics, checkpoint_dir, last_good)
  return metrics
