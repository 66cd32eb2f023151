"""The training loop: `train_and_evaluate(config, workdir)`.

Outputs under `workdir`:
  checkpoints/       orbax checkpoints (latest `train.keep_checkpoints`), resumed automatically.
  checkpoints_best/  the checkpoint with the best `eval.best_metric` so far (with eval.every).
  metrics.jsonl      one JSON object per log step.
  tensorboard/       TensorBoard event files (scalars and sample grids).
  samples/           PNG grids of G(z) for a fixed z, every `train.sample_every` steps.
  config.json        the config of the run.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import data as data_lib
from gan_jax import evaluation
from gan_jax import images as images_lib
from gan_jax import parallel
from gan_jax import spec as spec_lib
from gan_jax import writers as writers_lib
from gan_jax.step import images_to_float, train_iteration
from gan_jax.train_state import TrainState, create_train_state


class NonFiniteError(FloatingPointError):
  """A loss or norm became NaN or Inf; training stopped before saving it."""


def compile_train_iteration(spec: spec_lib.RunSpec):
  """The jitted iteration on spec.mesh: state replicated and donated, batch split on B."""
  replicated = parallel.replicated(spec.mesh)
  return jax.jit(functools.partial(train_iteration, spec=spec),
                 in_shardings=(replicated, parallel.batch_sharding(spec.mesh, batch_dim=1)),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def init_state(spec: spec_lib.RunSpec, seed: int) -> TrainState:
  """A fresh TrainState, replicated over spec.mesh."""
  init = jax.jit(functools.partial(create_train_state, spec, seed),
                 out_shardings=parallel.replicated(spec.mesh)).lower()
  # Initialisation runs once; on CPU, LLVM's optimisation of its random-number code took ~90 %
  # of the time to the first step (9-14 s for a tiny model, ~1 s without).
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return init.compile(compiler_options=options)()


def abstract_state(spec: spec_lib.RunSpec, seed: int) -> TrainState:
  """Shapes, dtypes and shardings of the TrainState, without allocating it."""
  shapes = jax.eval_shape(functools.partial(create_train_state, spec, seed))
  sharding = parallel.replicated(spec.mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      shapes)


def make_sampler(spec: spec_lib.RunSpec, use_ema: bool = True):
  """Returns jitted `sample(state, z) -> G(z)` (N, H, W, C) in inference mode, with the EMA
  weights of G when `use_ema` and the run keeps them."""

  @jax.jit
  def sample(state: TrainState, z: jax.Array) -> jax.Array:
    params = state.params
    if use_ema and spec.game.generator in state.ema:
      params = {**params, spec.game.generator: state.ema[spec.game.generator]}
    return spec.game.generate(params, state.model_state, z)

  return sample


def make_panels(spec: spec_lib.RunSpec):
  """Returns `panels(state, z, real) -> {name: images}` (ordered): the spec's summaries of the
  real images (e.g. the lens' view) followed by "generated": G(z)."""
  sampler = make_sampler(spec)
  names = [n for s in spec.summaries for n in s.names] + ["generated"]

  @jax.jit
  def images(state, z, real):
    out = [im for s in spec.summaries for im in s.fn(spec.game, state, real)]
    return out + [sampler(state, z)]

  return lambda state, z, real: dict(zip(names, images(state, z, real)))


def sample_noise(spec: spec_lib.RunSpec, seed: int, n: int) -> jax.Array:
  """The fixed noise (n, Z) of the sample grids."""
  from gan_jax.game import sample_noise as noise  # pylint: disable=g-import-not-at-top
  return noise(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5A11), (n, spec.z_dim),
               spec.game.z_dist)


def check_finite(step: int, metrics: Mapping[str, Any], checkpoint_dir: str,
                 last_good: int | None) -> None:
  """Raises NonFiniteError naming the step and metric if any metric is NaN or Inf."""
  bad = {k: float(v) for k, v in metrics.items() if not np.all(np.isfinite(v))}
  if bad:
    name = sorted(bad)[0]
    where = (f"the last good checkpoint (step {last_good}) in {checkpoint_dir} is intact"
             if last_good is not None else "no checkpoint had been written yet")
    raise NonFiniteError(f"non-finite {name} = {bad[name]} at step {step} (all non-finite: "
                         f"{sorted(bad)}); training stopped and {where}.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains the GAN of `config`, resuming from the latest checkpoint in `workdir`.

  Returns:
    The final TrainState.
  """
  spec = spec_lib.build_spec(config)
  train_cfg = config.train
  seed = config.seed
  is_main = jax.process_index() == 0
  config_dict = checkpoint_lib.config_to_dict(config)

  source = data_lib.load_source(config.data.to_dict(), seed)
  batches = data_lib.Batches(source, spec.batch_size, seed, process_index=jax.process_index(),
                             process_count=jax.process_count())
  logging.info("dataset %s/%s: %d examples, %d batches per epoch", config.data.source,
               config.data.name, len(source), batches.per_epoch)

  checkpoints = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                            keep=train_cfg.keep_checkpoints, config=config_dict)
  last_good = checkpoints.latest_step()
  if last_good is not None:
    state = checkpoints.restore(abstract_state(spec, seed))
    logging.info("resumed from step %d", last_good)
  else:
    state = init_state(spec, seed)
  start = int(state.step)
  if is_main:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      json.dump(config_dict, f, indent=2)

  evaluator = evaluation.build_evaluator(config, spec)
  best_checkpoints = None
  if evaluator is not None and evaluator.best_metric:
    best_checkpoints = checkpoint_lib.Checkpointer(
        os.path.join(workdir, "checkpoints_best"), keep=1, config=config_dict,
        metric=(evaluator.best_metric, evaluator.best_mode))

  writer = writers_lib.MultiWriter([
      writers_lib.ConsoleWriter(train_cfg.steps),
      writers_lib.JsonlWriter(os.path.join(workdir, "metrics.jsonl")),
      writers_lib.TensorBoardWriter(os.path.join(workdir, "tensorboard")),
  ] if is_main else [])

  put = functools.partial(data_lib.put_global,
                          sharding=parallel.batch_sharding(spec.mesh, batch_dim=1),
                          global_batch_size=spec.batch_size)
  fixed_z = sample_noise(spec, seed, train_cfg.num_samples)
  real_images = images_to_float(jnp.asarray(
      source[np.arange(min(train_cfg.num_samples, len(source)))]["image"]))

  def compile_for(step):
    """The spec, compiled iteration and image-panel function that apply from `step` on."""
    run_spec = spec_lib.build_spec(config, mesh=spec.mesh, step=step) if step else spec
    return run_spec, compile_train_iteration(run_spec), make_panels(run_spec)

  spec, step_fn, panels = compile_for(start)

  def save_samples(step):
    images = {k: np.asarray(v) for k, v in panels(state, fixed_z, real_images).items()}
    if is_main:
      grids = {k: images_lib.make_grid(v) for k, v in images.items()}
      images_lib.save_png(os.path.join(workdir, "samples", f"step_{step:07d}.png"),
                          images_lib.side_by_side(list(grids.values())))
      writer.write_images(step, {f"samples/{k}": v for k, v in grids.items()})

  history: list[Mapping[str, np.ndarray]] = []
  rate = writers_lib.RateMeter(start)
  pending = None  # (step, device metrics) of the last iteration, checked one step late
  data_iter = data_lib.iterate(batches, start, spec.batches_per_iteration, put,
                               prefetch=train_cfg.prefetch)
  try:
    for step in range(start + 1, train_cfg.steps + 1):
      if spec.rebuild_at is not None and step - 1 >= spec.rebuild_at:
        spec, step_fn, panels = compile_for(step - 1)
        logging.info("step %d: the run's spec changed; recompiled", step - 1)
      state, metrics = step_fn(state, next(data_iter))
      # Checking the previous iteration's metrics while this one runs keeps the device busy.
      if pending is not None:
        history.append(_check(pending, checkpoints.directory, last_good))
      pending = (step, metrics)

      save_now = step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps
      if step % train_cfg.log_every == 0 or save_now:
        history.append(_check(pending, checkpoints.directory, last_good))
        pending = None
        if step % train_cfg.log_every == 0 or step == train_cfg.steps:
          means = {k: float(np.mean([h[k] for h in history])) for k in history[-1]}
          means["perf/steps_per_sec"] = rate(step)
          writer.write_scalars(step, means)
          history = []
      if step % train_cfg.sample_every == 0 or step == train_cfg.steps:
        save_samples(step)
      if evaluator is not None and (step % config.eval.every == 0 or step == train_cfg.steps):
        if pending is not None:
          history.append(_check(pending, checkpoints.directory, last_good))
          pending = None
        results = evaluator(evaluation.make_sample_fn(spec, state, seed), step)
        writer.write_scalars(step, results)
        if best_checkpoints is not None:
          best_checkpoints.save(step, state, metrics=results)
      if save_now:
        checkpoints.save(step, state)
        last_good = step
  finally:
    data_iter.close()
    for c in (checkpoints, best_checkpoints):
      if c is not None:
        c.wait()
        c.close()
    writer.close()
  return state


def _check(pending, checkpoint_dir, last_good) -> dict[str, np.ndarray]:
  step, metrics = pending
  metrics = jax.device_get(metrics)
  check_finite(step, metrics, checkpoint_dir, last_good)
  return metrics
