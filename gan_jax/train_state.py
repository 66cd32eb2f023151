"""The TrainState: everything that changes during training, in one immutable pytree."""

from __future__ import annotations

import zlib
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


def named_key(key: jax.Array, name: str) -> jax.Array:
  """A key derived from `key` and a purpose's name (a network, a phase).

  Keys derived by name do not depend on which other networks or phases exist: adding a lens
  leaves the initial weights of G and D, and the noise they are trained on, unchanged, so runs
  with and without it start from identical G and D.
  """
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def create_train_state(spec, seed: int) -> TrainState:
  """Initialises every network, optimiser and controller of `spec` (a RunSpec) from `seed`.

  Runs under jit so initialisation is fast and its output sharding is chosen by the caller.
  """
  root = jax.random.PRNGKey(seed)
  init_key, train_key = jax.random.split(root)
  params, model_state, opt_state = {}, {}, {}
  for name, net in spec.networks.items():
    x = jnp.zeros(net.example_input.shape, net.example_input.dtype)
    variables = net.module.init({"params": named_key(init_key, name)}, x, train=False)
    variables = flax.core.unfreeze(variables)
    params[name] = variables.pop("params")
    variables.pop("intermediates", None)
    model_state[name] = variables
    opt_state[name] = net.optimizer.init(params[name])
  aux = {c.name: c.init() for c in spec.controllers}
  ema = {name: params[name] for name in spec.ema_networks}
  return TrainState(step=jnp.zeros((), jnp.int32), rng=train_key, params=params,
                    model_state=model_state, opt_state=opt_state, aux=aux, ema=ema)
