"""The generic training iteration: phases of updates, controllers, then the EMA.

`train_iteration(state, batch, spec=...)` is the one function compiled per run. Nothing in it
knows about particular games, objectives or stabilisers: those arrive as the game, terms,
phases and controllers of the RunSpec (`gan_jax.spec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gan_jax.core.phases import Controller, Phase
from gan_jax.core.random import named_key
from gan_jax.core.terms import BALANCE, evaluate_terms
from gan_jax.core.train_state import TrainState
from gan_jax.images import images_to_float

Metrics = dict[str, jax.Array]


def _phase_loss(
  spec, phase: Phase, state: TrainState, start: TrainState, batch, key, outputs, params
):
  """The phase's loss as (sum of fixed-weight terms, sum of balanced terms), with metrics."""
  model_state = dict(state.model_state)
  ctx_key, terms_key = jax.random.split(key)
  # A simultaneous phase sees the other networks as they were when the iteration started.
  others = start.params if phase.simultaneous else state.params
  ctx = spec.game.context(
    networks=phase.networks,
    params={**others, **params},
    model_state=model_state,
    batch=batch,
    aux=state.aux,
    step=state.step,
    key=ctx_key,
    outputs=outputs,
  )
  losses, metrics = evaluate_terms(phase.terms, ctx, terms_key, state.aux, phase.name)
  exported = {f"{phase.name}/{n}": jax.lax.stop_gradient(ctx[n]) for n in phase.outputs}
  return losses, (metrics, model_state, exported)


def _phase_gradients(spec, phase: Phase, state: TrainState, start: TrainState, batch, key, outputs):
  """Gradient of the phase loss w.r.t. the phase's networks, with balanced terms rescaled."""
  params = {name: state.params[name] for name in phase.networks}

  def part(i):
    """params -> (the i-th of (fixed, balanced), ((fixed, balanced), the rest))."""

    def part_loss(p):
      losses, rest = _phase_loss(spec, phase, state, start, batch, key, outputs, p)
      return losses[i], (losses, rest)

    return part_loss

  grads, ((fixed, balanced), (metrics, model_state, exported)) = jax.grad(part(0), has_aux=True)(
    params
  )
  if any(t.weight == BALANCE for t in phase.terms):
    # Each sum gets its own backward pass. One vjp transposed twice, with cotangents (1, 0) and
    # (0, 1), would run the backward pass of both sums twice, one of them multiplied by zero
    # (AdvAs's G update, B = 64: 52.4 GFLOPs that way, 43.1 this way). The forward pass the
    # two traces share is computed once: XLA merges the identical computations.
    grads_balanced, _ = jax.grad(part(1), has_aux=True)(params)
    # λ = ‖∇L_fixed‖ / ‖∇L_balanced‖, a constant: no gradient flows through it.
    scale = optax.tree.norm(grads) / (optax.tree.norm(grads_balanced) + 1e-12)
    grads = jax.tree.map(lambda g, b: g + scale * b, grads, grads_balanced)
    metrics[f"{phase.name}/balance_weight"] = scale
    fixed = fixed + scale * balanced
  metrics[f"{phase.name}/loss"] = fixed
  return grads, metrics, model_state, exported


def _phase_update(spec, phase: Phase, state: TrainState, start: TrainState, batch, key, outputs):
  """One optimiser update of each of the phase's networks, on the phase's one loss."""
  grads, metrics, model_state, exported = _phase_gradients(
    spec, phase, state, start, batch, key, outputs
  )
  params, opt_state = dict(state.params), dict(state.opt_state)
  scale = phase.update_scale(state.aux) if phase.update_scale is not None else None
  for name in phase.networks:
    updates, opt_state[name] = spec.networks[name].optimizer.update(
      grads[name], state.opt_state[name], state.params[name]
    )
    if scale is not None:
      updates = jax.tree.map(lambda u: scale * u, updates)
    params[name] = optax.apply_updates(state.params[name], updates)
    if phase.constraint is not None:
      params[name] = phase.constraint(params[name])
    if len(phase.networks) > 1:
      metrics[f"{phase.name}/{name}/grad_norm"] = optax.tree.norm(grads[name])
      metrics[f"{phase.name}/{name}/param_norm"] = optax.tree.norm(params[name])
  updated = [params[name] for name in phase.networks]
  metrics[f"{phase.name}/grad_norm"] = optax.tree.norm(
    grads if len(phase.networks) > 1 else grads[phase.networks[0]]
  )
  metrics[f"{phase.name}/param_norm"] = optax.tree.norm(
    updated if len(phase.networks) > 1 else updated[0]
  )
  state = state.replace(params=params, opt_state=opt_state, model_state=model_state)
  return state, metrics, exported


def _run_phase(spec, phase: Phase, state: TrainState, start: TrainState, batches, key, outputs):
  """`phase.repeats` updates, the r-th on the r-th of the last `repeats` real batches.

  Metrics are averaged over the repeats; exported outputs are the last repeat's. The repeats
  are unrolled rather than scanned: XLA:CPU runs convolutions inside a while loop tens of times
  slower than straight-line code (measured: 40x for the critic steps), and n_critic is small.
  """
  total = jax.tree.leaves(batches)[0].shape[0]
  metrics = []
  exported = {}
  for r in range(phase.repeats):
    batch = jax.tree.map(lambda x, i=total - phase.repeats + r: x[i], batches)
    state, m, exported = _phase_update(
      spec, phase, state, start, batch, jax.random.fold_in(key, r), outputs
    )
    metrics.append(m)
  return state, jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *metrics), exported


def _run_controller(
  controller: Controller,
  state: TrainState,
  aux: dict[str, Any],
  metrics: Metrics,
  outputs: Mapping[str, Any],
  rng: jax.Array,
) -> Metrics:
  """Updates `aux[controller.name]` in place; returns its metrics, prefixed by its name."""
  available = {
    "metrics": metrics,
    "step": state.step,
    "params": state.params,
    "outputs": outputs,
    "key": named_key(rng, f"controller/{controller.name}"),
  }
  kwargs = {name: available[name] for name in controller.inputs}
  aux[controller.name], controller_metrics = controller.update(aux[controller.name], **kwargs)
  return {f"{controller.name}/{k}": v for k, v in controller_metrics.items()}


def train_iteration(
  state: TrainState, batch: Mapping[str, jax.Array], *, spec
) -> tuple[TrainState, Metrics]:
  """One training iteration: every phase in order (each followed by the controllers that run
  after it), then the remaining controllers, then the EMA.

  Randomness: the iteration's key is fold_in(state.rng, step); each phase derives its own key
  from it by name (`named_key`), each repeat by its index, then one key for the context (the
  noise z) and one per term. Keys therefore do not depend on which other phases exist: a run
  with a lens draws the same z for D and G as the run without.

  Args:
    state: the TrainState (donated by the compiled caller).
    batch: {"image": (R, B, H, W, C) uint8 or float in [-1, 1], optional "label": (R, B)}, or
      a game's own layout (e.g. CycleGAN's "image_x", "image_y"), R =
      spec.batches_per_iteration real batches (n_critic for WGAN).
    spec: the RunSpec (static).

  Returns:
    (new state, metrics): scalar metrics, named "<phase>/<term>[/<metric>]".
  """
  if "image" in batch:
    # Games with other image keys (CycleGAN's "image_x", "image_y") convert their own.
    batch = {**batch, "image": images_to_float(batch["image"])}
  rng = jax.random.fold_in(state.rng, state.step)
  start = state
  metrics: Metrics = {}
  outputs: dict[str, Any] = {}
  aux = dict(state.aux)
  for phase in spec.phases:
    state, phase_metrics, exported = _run_phase(
      spec, phase, state, start, batch, named_key(rng, phase.name), outputs
    )
    metrics.update(phase_metrics)
    outputs.update(exported)
    for controller in spec.controllers:
      if controller.after == phase.name:
        metrics.update(_run_controller(controller, state, aux, metrics, outputs, rng))
        state = state.replace(aux=dict(aux))

  for controller in spec.controllers:
    if controller.after is None:
      metrics.update(_run_controller(controller, state, aux, metrics, outputs, rng))

  ema = state.ema
  if spec.ema_decay is not None:
    d = spec.ema_decay
    ema = {
      name: jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema[name], state.params[name])
      for name in ema
    }
  return state.replace(step=state.step + 1, aux=aux, ema=ema), metrics
