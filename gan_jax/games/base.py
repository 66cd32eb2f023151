"""The protocol every game follows, and the helpers games share.

A **game** is a family of models trained against each other: the unconditional GAN (G and D,
optionally a lens in front of D), later the semi-supervised K+1 GAN and image translation
(two generators, two discriminators). The training step, the TrainState and the sampling code
know a game only through this protocol:

  networks        name -> Network (Flax module, optimiser, example input for initialisation).
  init_variables  (key, batch) -> {name: variables}: initialises every network; `batch` is a
                  real batch for games that keep init-time data (a reference batch).
  quantities      the names a term may ask for.
  context         the lazy named quantities of one update (`gan_jax.core.terms.Context`).
  sample_inputs   (key, n) -> the inputs of `sample` (noise z for an unconditional G).
  sample          (params, model_state, inputs) -> {panel name: images (N, H, W, C) in
                  [-1, 1]}: what a sample grid shows and evaluators score ("generated").
  predict         optional, for games with a classifier (the semi-supervised K+1 GAN):
                  (params, model_state, images (N, H, W, C) in [-1, 1]) -> logits (N, K) in
                  inference mode, what a classification evaluator scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from gan_jax.core.phases import Network
from gan_jax.core.random import named_key
from gan_jax.core.terms import Context

PyTree = Any
# The panel of `Game.sample` that evaluators score.
GENERATED = "generated"


class Game(Protocol):
  """What the training step and the samplers need of a game (see the module docstring)."""

  networks: Mapping[str, Network]

  def init_variables(
    self, key: jax.Array, batch: Mapping[str, jax.Array] | None = None
  ) -> dict[str, dict[str, PyTree]]: ...

  def quantities(self, aux_names: tuple[str, ...] = ()) -> frozenset[str]: ...

  def context(
    self,
    *,
    networks: tuple[str, ...],
    params: Mapping[str, PyTree],
    model_state: dict[str, PyTree],
    batch: Mapping[str, jax.Array],
    aux: Mapping[str, PyTree],
    step: jax.Array,
    key: jax.Array,
    outputs: Mapping[str, Any] | None = None,
  ) -> Context: ...

  def sample_inputs(self, key: jax.Array, n: int) -> PyTree: ...

  def sample(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], inputs: PyTree
  ) -> dict[str, jax.Array]: ...


class StaticQuantities:
  """`Game.quantities` for a game whose quantities are a fixed tuple plus the controllers'
  states: a game class lists its own in `STATIC_QUANTITIES`."""

  STATIC_QUANTITIES: tuple[str, ...] = ()

  def quantities(self, aux_names: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a term of this game may ask for: its static quantities and every
    controller's name (`aux_names`)."""
    return frozenset(self.STATIC_QUANTITIES) | frozenset(aux_names)


def init_networks(networks: Mapping[str, Network], key: jax.Array) -> dict[str, dict[str, PyTree]]:
  """Initialises each network on zeros of its example input, with a key named after it.

  Returns:
    name -> variables ("params" and the other collections, e.g. "batch_stats").
  """
  out = {}
  for name, net in networks.items():
    x = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), net.example_input)
    variables = net.module.init({"params": named_key(key, name)}, x, train=False)
    variables = flax.core.unfreeze(variables)
    variables.pop("intermediates", None)
    out[name] = variables
  return out


def forward(
  module,
  params: PyTree,
  model_state: dict[str, PyTree],
  name: str,
  x: Any,
  *,
  train: bool,
  update_state: bool = True,
  rngs: Mapping[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
  """One pass of a network, returning its output and everything it sowed, once.

  Args:
    module: the Flax module.
    params: the network's parameters.
    model_state: name -> non-parameter collections; in training mode the network's new
      BatchNorm statistics are written into it (a dict, updated in place while tracing).
    name: the network's name in `model_state`.
    x: its input.
    train: training mode (batch statistics) or inference (running averages).
    update_state: write the new statistics (False for extra passes whose statistics must not
      count, e.g. a gradient penalty's).
    rngs: PRNG keys by collection name for stochastic layers (the Gaussian noise and dropout
      of the semi-supervised discriminators ask for "noise"), or None for a deterministic
      network (the unconditional game's passes take none, so their draws are unchanged).

  Returns:
    {"output": the module's return value, **sown intermediates} (e.g. "features",
    "reconstruction"), each intermediate the last value sown under its name.
  """
  variables = {"params": params, **model_state[name]}
  mutable = (list(model_state[name]) if train else []) + ["intermediates"]
  out, updates = module.apply(variables, x, train=train, mutable=mutable, rngs=rngs)
  if train and update_state:
    model_state[name] = {k: updates[k] for k in model_state[name]}
  sown = {k: v[-1] for k, v in updates.get("intermediates", {}).items()}
  return {"output": out, **sown}
