"""Sampling from a trained state: the functions the trainer hands to sample grids and
evaluators. Nothing here knows which game it samples from: `spec.game.sample` does.

  sample = make_sampler(spec)                     # jitted (state, inputs) -> {panel: images}
  inputs = fixed_inputs(spec, seed, n, GRID)      # the same for every step
  sample_fn = make_sample_fn(spec, state, seed)   # n -> generated images (n, H, W, C)
  predictor = make_predictor(spec)                # jitted (params, model_state, images) -> logits
  fns = make_predict_fns(spec, state, predictor)  # {"current"[, "ema"]: images -> logits}
  translator = make_translator(spec)              # jitted (params, model_state, images) -> ...
  fns = make_translate_fns(spec, state, translator)  # {"y": G, "x": F}: images -> images
  fns = evaluation_fns(evaluator.needs, spec, state, seed)  # what an evaluator is handed
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import numpy as np

from gan_jax.core import parallel
from gan_jax.core.train_state import TrainState
from gan_jax.games.base import GENERATED
from gan_jax.images import images_to_float

# Purposes of the fixed sampling inputs: each draws from its own stream of the run's seed, so
# the grids' and the evaluations' inputs are independent and the same at every step.
GRID, EVALUATION = 0x5A11, 0xE7A1


def fixed_inputs(spec, seed: int, n: int, purpose: int = GRID):
  """The game's sampling inputs (noise z (n, Z) for an unconditional G) for `purpose`."""
  return spec.game.sample_inputs(jax.random.fold_in(jax.random.PRNGKey(seed), purpose), n)


def make_sampler(spec, use_ema: bool = True) -> Callable[[TrainState, object], dict]:
  """Returns jitted `sample(state, inputs) -> {panel: images (N, H, W, C)}` in inference mode,
  with the EMA of the networks that keep one when `use_ema`."""

  @jax.jit
  def sample(state: TrainState, inputs) -> dict:
    params = {**state.params, **state.ema} if use_ema else state.params
    return spec.game.sample(params, state.model_state, inputs)

  return sample


def make_panels(spec):
  """Returns `panels(state, inputs, real) -> {name: images}` (ordered): the spec's summaries
  of real images (e.g. the lens' view) followed by the game's sample panels."""
  # A jitted function returns dicts with sorted keys: the game's panel order (e.g. CycleGAN's
  # x | G(x) | F(G(x))) is recorded while tracing and restored.
  order: list[str] = []

  @jax.jit
  def images(state, inputs, real):
    out = {}
    for summary in spec.summaries:
      out.update(zip(summary.names, summary.fn(spec.game, state, real)))
    samples = spec.game.sample({**state.params, **state.ema}, state.model_state, inputs)
    order[:] = list(samples)
    return out, samples

  def panels(state, inputs, real):
    summaries, samples = images(state, inputs, real)
    names = [n for s in spec.summaries for n in s.names]
    return {**{n: summaries[n] for n in names}, **{n: samples[n] for n in order}}

  return panels


def _device_batch(spec, batch_size: int) -> int:
  """`batch_size` rounded down to a multiple of the device count (at least one per device)."""
  n_dev = spec.mesh.size
  return max(n_dev, batch_size // n_dev * n_dev)


def _in_batches(fn: Callable, inputs: np.ndarray, batch_size: int) -> np.ndarray:
  """`fn` over `inputs` in batches of `batch_size`, the last one padded (so one compiled
  program serves every call) and the padded rows dropped; float32 on the host."""
  out = []
  for lo in range(0, len(inputs), batch_size):
    chunk = inputs[lo : lo + batch_size]
    out.append(parallel.to_host(fn(parallel.pad_batch(chunk, batch_size)))[: len(chunk)])
  return np.concatenate(out).astype(np.float32)


def make_sample_fn(
  spec, state: TrainState, seed: int, batch_size: int = 500
) -> Callable[[int], np.ndarray]:
  """sample_fn(n) -> n generated images (n, H, W, C) float32 in [-1, 1], for evaluators.

  The inputs are fixed (the same for every call and step, drawn from `seed`, independent of
  the sample grids'), generated in batches of `batch_size` rounded to the device count.
  """
  sampler = make_sampler(spec)
  batch_size = _device_batch(spec, batch_size)

  def sample_fn(n: int) -> np.ndarray:
    inputs = np.asarray(fixed_inputs(spec, seed, n, EVALUATION))
    return _in_batches(lambda z: sampler(state, z)[GENERATED], inputs, batch_size)

  return sample_fn


def make_predictor(spec) -> Callable:
  """Returns jitted `predict(params, model_state, images) -> logits (N, K)` of a game with a
  classifier (`Game.predict`, inference mode); images uint8 or float in [-1, 1]."""
  if not hasattr(spec.game, "predict"):
    raise ValueError(f"game {type(spec.game).__name__} has no classifier (no `predict`)")

  @jax.jit
  def predict(params, model_state, images):
    return spec.game.predict(params, model_state, images_to_float(images))

  return predict


def make_predict_fns(
  spec, state: TrainState, predictor: Callable | None = None, batch_size: int = 500
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
  """Classification functions for evaluators: {"current": the state's parameters, and "ema":
  with the EMA of the networks that keep one (when any does)}, each mapping images
  (n, H, W, C) (uint8, or float in [-1, 1]) to logits (n, K) float32, in batches of
  `batch_size` rounded to the device count.

  Args:
    spec: the RunSpec (its game has `predict`).
    state: the TrainState.
    predictor: `make_predictor(spec)`, to reuse its compilation across evaluations.
    batch_size: images per call.
  """
  predictor = predictor or make_predictor(spec)
  batch_size = _device_batch(spec, batch_size)

  def make(params):
    def predict_fn(images: np.ndarray) -> np.ndarray:
      return _in_batches(
        lambda x: predictor(params, state.model_state, x), np.asarray(images), batch_size
      )

    return predict_fn

  fns = {"current": make(state.params)}
  if state.ema:
    fns["ema"] = make({**state.params, **state.ema})
  return fns


def make_translator(spec) -> Callable:
  """Returns jitted `translate(params, model_state, images) -> {"y": G(images), "x":
  F(images)}` of a translation game (`Game.translate`, inference mode); images uint8 or float
  in [-1, 1], outputs float in [-1, 1]. Both directions are traced once each, for the image
  shape of the domains."""
  if not hasattr(spec.game, "translate"):
    raise ValueError(f"game {type(spec.game).__name__} does not translate (no `translate`)")

  @functools.partial(jax.jit, static_argnames="target")
  def translate(params, model_state, images, target):
    return spec.game.translate(target, params, model_state, images_to_float(images), train=False)

  return translate


def make_translate_fns(
  spec, state: TrainState, translator: Callable | None = None, batch_size: int = 500
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
  """Translation functions for evaluators: {"y": G, "x": F}, each mapping images
  (n, H, W, C) (uint8, or float in [-1, 1]) of the other domain to (n, H, W, C) float32 in
  [-1, 1], with the EMA of the networks that keep one, in batches of `batch_size` rounded to
  the device count.

  Args:
    spec: the RunSpec (its game has `translate(target, params, model_state, images, train)`).
    state: the TrainState.
    translator: `make_translator(spec)`, to reuse its compilation across evaluations.
    batch_size: images per call.
  """
  translator = translator or make_translator(spec)
  batch_size = _device_batch(spec, batch_size)
  params = {**state.params, **state.ema}

  def make(target):
    def translate_fn(images: np.ndarray) -> np.ndarray:
      return _in_batches(
        lambda x: translator(params, state.model_state, x, target), np.asarray(images), batch_size
      )

    return translate_fn

  return {"y": make("y"), "x": make("x")}


def make_compiled(needs: str, spec) -> Callable | None:
  """The jitted function behind `evaluation_fns(needs, ...)`, to reuse its compilation across
  evaluations: a predictor ("predict"), a translator ("translate"), or None ("samples")."""
  if needs == "predict":
    return make_predictor(spec)
  if needs == "translate":
    return make_translator(spec)
  return None


def evaluation_fns(
  needs: str,
  spec,
  state: TrainState,
  seed: int,
  *,
  batch_size: int = 500,
  compiled: Callable | None = None,
):
  """What an evaluator is handed, by its `needs`: "samples", a sample function (n -> images);
  "predict", classification functions ({"current"[, "ema"]: images -> logits}); "translate",
  translation functions ({"y": G, "x": F}: images -> images).

  Args:
    needs: the evaluator's `needs`.
    spec: the RunSpec.
    state: the TrainState to evaluate.
    seed: the seed of the evaluation noise (samples).
    batch_size: images per call of the network (rounded to the device count; eval.batch_size
      is the feature extractors' batch, not this).
    compiled: `make_compiled(needs, spec)`, to reuse its compilation.
  """
  if needs == "samples":
    return make_sample_fn(spec, state, seed, batch_size=batch_size)
  if needs == "predict":
    return make_predict_fns(spec, state, compiled, batch_size=batch_size)
  if needs == "translate":
    return make_translate_fns(spec, state, compiled, batch_size=batch_size)
  raise ValueError(f"unknown evaluator needs {needs!r}; valid: samples, predict, translate")
