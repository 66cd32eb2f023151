"""The TrainState: everything that changes during training, in one immutable pytree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """All mutable training state. Change it only with `.replace(...)`.

  Attributes:
    step: number of completed iterations (int32 scalar).
    rng: base PRNG key (uint32 (2,)); iteration t uses fold_in(rng, t), so the key itself
      never changes and a resumed run draws the same numbers.
    params: network name -> parameters.
    model_state: network name -> non-parameter collections (BatchNorm "batch_stats").
    opt_state: network name -> optax state of its optimiser.
    aux: controller name -> controller state (BEGAN's k_t, the lens λ, running averages).
    ema: network name -> exponential moving average of its parameters (generator EMA).
  """

  step: jax.Array
  rng: jax.Array
  params: dict[str, PyTree]
  model_state: dict[str, PyTree]
  opt_state: dict[str, PyTree]
  aux: dict[str, PyTree]
  ema: dict[str, PyTree]


def create_train_state(spec, seed: int, batch: Mapping[str, Any] | None = None) -> TrainState:
  """Initialises every network, optimiser and controller of `spec` (a RunSpec) from `seed`.

  Args:
    spec: the RunSpec.
    seed: the run's seed; the state's keys and initial weights are functions of it only.
    batch: a real batch, for games that keep init-time data (a reference batch); None for
      the others.

  Runs under jit so initialisation is fast and its output sharding is chosen by the caller.
  """
  root = jax.random.PRNGKey(seed)
  init_key, train_key = jax.random.split(root)
  variables = spec.game.init_variables(init_key, batch)
  params, model_state, opt_state = {}, {}, {}
  for name, net in spec.networks.items():
    params[name] = variables[name].pop("params")
    model_state[name] = variables[name]
    opt_state[name] = net.optimizer.init(params[name])
  aux = {}
  for c in spec.controllers:
    aux[c.name] = c.init(params=params) if "params" in c.init_inputs else c.init()
  ema = {name: params[name] for name in spec.ema_networks}
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    rng=train_key,
    params=params,
    model_state=model_state,
    opt_state=opt_state,
    aux=aux,
    ema=ema,
  )
