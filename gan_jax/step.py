"""The generic training iteration: phases of updates, then controllers, then the EMA.

`train_iteration(state, batch, spec=...)` is the one function compiled per run. Nothing in it
knows about particular objectives or stabilisers: those arrive as terms, phases and
controllers in the RunSpec (`gan_jax.spec`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from gan_jax.game import BALANCE, Phase, evaluate_terms
from gan_jax.train_state import TrainState, named_key

Metrics = dict[str, jax.Array]


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]; float input is passed through."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 127.5 - 1.0
  return images


def _phase_loss(spec, phase: Phase, state: TrainState, start: TrainState, batch, key, params):
  """The phase's loss as (sum of fixed-weight terms, sum of balanced terms), with metrics."""
  model_state = dict(state.model_state)
  ctx_key, terms_key = jax.random.split(key)
  # A simultaneous phase sees the other networks as they were when the iteration started.
  others = start.params if phase.simultaneous else state.params
  ctx = spec.game.context(network=phase.network, params={**others, phase.network: params},
                          model_state=model_state, batch=batch, aux=state.aux, step=state.step,
                          key=ctx_key)
  losses, metrics = evaluate_terms(phase.terms, ctx, terms_key, state.aux, phase.name)
  return losses, (metrics, model_state)


def _phase_gradients(spec, phase: Phase, state: TrainState, start: TrainState, batch, key):
  """Gradient of the phase loss w.r.t. the phase's network, with balanced terms rescaled."""
  params = state.params[phase.network]
  loss = lambda p: _phase_loss(spec, phase, state, start, batch, key, p)
  (fixed, balanced), vjp, (metrics, model_state) = jax.vjp(loss, params, has_aux=True)
  grads = vjp((jnp.ones_like(fixed), jnp.zeros_like(balanced)))[0]
  if any(t.weight == BALANCE for t in phase.terms):
    grads_balanced = vjp((jnp.zeros_like(fixed), jnp.ones_like(balanced)))[0]
    # λ = ‖∇L_fixed‖ / ‖∇L_balanced‖, a constant: no gradient flows through it.
    scale = optax.tree.norm(grads) / (optax.tree.norm(grads_balanced) + 1e-12)
    grads = jax.tree.map(lambda g, b: g + scale * b, grads, grads_balanced)
    metrics[f"{phase.name}/balance_weight"] = scale
    fixed = fixed + scale * balanced
  metrics[f"{phase.name}/loss"] = fixed
  return grads, metrics, model_state


def _phase_update(spec, phase: Phase, state: TrainState, start: TrainState, batch, key):
  """One optimiser update of the phase's network."""
  grads, metrics, model_state = _phase_gradients(spec, phase, state, start, batch, key)
  name = phase.network
  params = state.params[name]
  updates, opt_state = spec.networks[name].optimizer.update(grads, state.opt_state[name], params)
  if phase.update_scale is not None:
    scale = phase.update_scale(state.aux)
    updates = jax.tree.map(lambda u: scale * u, updates)
  params = optax.apply_updates(params, updates)
  if phase.constraint is not None:
    params = phase.constraint(params)
  metrics[f"{phase.name}/grad_norm"] = optax.tree.norm(grads)
  metrics[f"{phase.name}/param_norm"] = optax.tree.norm(params)
  state = state.replace(params={**state.params, name: params},
                        opt_state={**state.opt_state, name: opt_state},
                        model_state=model_state)
  return state, metrics


def _run_phase(spec, phase: Phase, state: TrainState, start: TrainState, batches, key):
  """`phase.repeats` updates, the r-th on the r-th of the last `repeats` real batches.

  Metrics are averaged over the repeats. The repeats are unrolled rather than scanned:
  XLA:CPU runs convolutions inside a while loop tens of times slower than straight-line code
  (measured: 40x for the critic steps), and n_critic is small.
  """
  total = jax.tree.leaves(batches)[0].shape[0]
  metrics = []
  for r in range(phase.repeats):
    batch = jax.tree.map(lambda x, i=total - phase.repeats + r: x[i], batches)
    state, m = _phase_update(spec, phase, state, start, batch, jax.random.fold_in(key, r))
    metrics.append(m)
  return state, jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *metrics)


def train_iteration(state: TrainState, batch: Mapping[str, jax.Array], *,
                    spec) -> tuple[TrainState, Metrics]:
  """One training iteration: every phase in order, then controllers, then the EMA.

  Randomness: the iteration's key is fold_in(state.rng, step); each phase derives its own key
  from it by name (`named_key`), each repeat by its index, then one key for the context (the
  noise z) and one per term. Keys therefore do not depend on which other phases exist: a run
  with a lens draws the same z for D and G as the run without.

  Args:
    state: the TrainState (donated by the compiled caller).
    batch: {"image": (R, B, H, W, C) uint8 or float in [-1, 1], optional "label": (R, B)},
      R = spec.batches_per_iteration real batches (n_critic for WGAN).
    spec: the RunSpec (static).

  Returns:
    (new state, metrics): scalar metrics, named "<phase>/<term>[/<metric>]".
  """
  batch = {**batch, "image": images_to_float(batch["image"])}
  rng = jax.random.fold_in(state.rng, state.step)
  start = state
  metrics: Metrics = {}
  for phase in spec.phases:
    state, phase_metrics = _run_phase(spec, phase, state, start, batch,
                                      named_key(rng, phase.name))
    metrics.update(phase_metrics)

  aux = dict(state.aux)
  for controller in spec.controllers:
    aux[controller.name], controller_metrics = controller.update(
        aux[controller.name], metrics=metrics, step=state.step)
    metrics.update({f"{controller.name}/{k}": v for k, v in controller_metrics.items()})

  ema = state.ema
  if spec.ema_decay is not None:
    d = spec.ema_decay
    ema = {name: jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema[name], state.params[name])
           for name in ema}
  return state.replace(step=state.step + 1, aux=aux, ema=ema), metrics
