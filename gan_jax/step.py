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

from gan_jax.game import BALANCE, Phase
from gan_jax.train_state import TrainState

Metrics = dict[str, jax.Array]


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]; float input is passed through."""
  if images.dtype == jnp.uint8:
    return images.astype(jnp.float32) / 127.5 - 1.0
  return images


def _phase_loss(spec, phase: Phase, state: TrainState, batch, key, params):
  """The phase's loss as (sum of fixed-weight terms, sum of balanced terms), with metrics."""
  model_state = dict(state.model_state)
  ctx_key, term_keys = jax.random.split(key)
  term_keys = jax.random.split(term_keys, len(phase.terms))
  ctx = spec.game.context(network=phase.network, params={**state.params, phase.network: params},
                          model_state=model_state, batch=batch, aux=state.aux, step=state.step,
                          key=ctx_key)
  totals = {"fixed": jnp.zeros(()), "balanced": jnp.zeros(())}
  metrics = {}
  for term, term_key in zip(phase.terms, term_keys):
    kwargs = {name: term_key if name == "key" else ctx[name] for name in term.inputs}
    value, term_metrics = term.fn(**kwargs)
    if term.weight == BALANCE:
      totals["balanced"] = totals["balanced"] + value
    else:
      totals["fixed"] = totals["fixed"] + term.weight * value
    metrics[f"{phase.name}/{term.name}"] = value
    metrics.update({f"{phase.name}/{term.name}/{k}": v for k, v in term_metrics.items()})
  return (totals["fixed"], totals["balanced"]), (metrics, model_state)


def _phase_gradients(spec, phase: Phase, state: TrainState, batch, key):
  """Gradient of the phase loss w.r.t. the phase's network, with balanced terms rescaled."""
  params = state.params[phase.network]
  loss = lambda p: _phase_loss(spec, phase, state, batch, key, p)
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


def _phase_update(spec, phase: Phase, state: TrainState, batch, key):
  """One optimiser update of the phase's network."""
  grads, metrics, model_state = _phase_gradients(spec, phase, state, batch, key)
  name = phase.network
  params = state.params[name]
  updates, opt_state = spec.networks[name].optimizer.update(grads, state.opt_state[name], params)
  params = optax.apply_updates(params, updates)
  if phase.constraint is not None:
    params = phase.constraint(params)
  metrics[f"{phase.name}/grad_norm"] = optax.tree.norm(grads)
  metrics[f"{phase.name}/param_norm"] = optax.tree.norm(params)
  state = state.replace(params={**state.params, name: params},
                        opt_state={**state.opt_state, name: opt_state},
                        model_state=model_state)
  return state, metrics


def _run_phase(spec, phase: Phase, state: TrainState, batches, key):
  """`phase.repeats` updates, the r-th on the r-th of the last `repeats` real batches.

  Metrics are averaged over the repeats.
  """
  batches = jax.tree.map(lambda x: x[-phase.repeats:], batches)
  keys = jax.random.split(key, phase.repeats)
  if phase.repeats == 1:
    return _phase_update(spec, phase, state, jax.tree.map(lambda x: x[0], batches), keys[0])

  def body(state, inputs):
    batch, k = inputs
    return _phase_update(spec, phase, state, batch, k)

  # Unrolled: XLA:CPU runs convolutions inside a while loop tens of times slower than
  # straight-line code (measured 40x for the critic steps), and n_critic is small.
  state, metrics = jax.lax.scan(body, state, (batches, keys), unroll=True)
  return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def train_iteration(state: TrainState, batch: Mapping[str, jax.Array], *,
                    spec) -> tuple[TrainState, Metrics]:
  """One training iteration: every phase in order, then controllers, then the EMA.

  Args:
    state: the TrainState (donated by the compiled caller).
    batch: {"image": (R, B, H, W, C) uint8 or float in [-1, 1], optional "label": (R, B)},
      R = spec.batches_per_iteration real batches (n_critic for WGAN).
    spec: the RunSpec (static).

  Returns:
    (new state, metrics): scalar metrics, named "<phase>/<term>[/<metric>]".
  """
  batch = {**batch, "image": images_to_float(batch["image"])}
  # One key per iteration, then one split per purpose (each phase).
  rng = jax.random.fold_in(state.rng, state.step)
  keys = jax.random.split(rng, len(spec.phases))
  metrics: Metrics = {}
  for phase, key in zip(spec.phases, keys):
    state, phase_metrics = _run_phase(spec, phase, state, batch, key)
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
