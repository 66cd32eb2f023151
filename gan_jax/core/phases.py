"""Phases, controllers and networks: the static pieces a training iteration is built from.

A training iteration (`gan_jax.core.step`) runs a sequence of **phases**. A phase updates one
network, or several jointly, `repeats` times (D's n_critic updates are a phase with
`repeats=n_critic`; CycleGAN's two generators are one phase on one loss) by the gradient of a
weighted sum of terms (`gan_jax.core.terms`). **Controllers** update state kept in
`TrainState.aux` (BEGAN's k_t, the lens λ, running averages, image pools) after a given phase
or after all of them, from the iteration's metrics, parameters and phase outputs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax

from gan_jax.core.terms import Term

PyTree = Any
Metrics = dict[str, jax.Array]

# What a controller's `update` may ask for by naming it as a keyword argument.
CONTROLLER_INPUTS = ("metrics", "step", "params", "outputs", "key")


@dataclasses.dataclass(frozen=True)
class Phase:
  """A block of updates inside a training iteration.

  Attributes:
    name: metric prefix ("d", "g", "lens", ...).
    networks: the network(s) whose parameters are updated (a name or a tuple of names); with
      several, one loss is minimised over all of them jointly, each with its own optimiser.
    terms: the terms whose weighted sum is minimised.
    repeats: number of consecutive updates (n_critic for D); each uses its own real batch.
    constraint: params -> params applied to each updated network after every update (WGAN
      weight clipping), or None.
    update_scale: aux -> scalar multiplying the optimiser's update (a learning-rate factor
      set by a controller, e.g. BEGAN's halving), or None.
    simultaneous: take the gradient at the other networks' parameters from the start of the
      iteration, not after the earlier phases' updates (simultaneous updates, as BEGAN's).
    outputs: names of quantities of the phase's context exported after its last update, as
      "<phase>/<name>" (gradient stopped), to later phases (quantity `outputs`) and to
      controllers (e.g. the generated images an image history pool stores).
  """

  name: str
  networks: str | tuple[str, ...]
  terms: tuple[Term, ...]
  repeats: int = 1
  constraint: Callable[[PyTree], PyTree] | None = None
  update_scale: Callable[[Mapping[str, Any]], jax.Array] | None = None
  simultaneous: bool = False
  outputs: tuple[str, ...] = ()

  def __post_init__(self):
    if isinstance(self.networks, str):
      object.__setattr__(self, "networks", (self.networks,))
    if not self.networks:
      raise ValueError(f"phase {self.name!r} updates no network")


@dataclasses.dataclass(frozen=True)
class Controller:
  """State updated once per iteration, stored in `TrainState.aux[name]`.

  Attributes:
    name: key in `TrainState.aux`; terms can ask for the state under this name.
    init: () -> initial state (a pytree of arrays); it may ask for `params` (the initial
      parameters, name -> params) by keyword, e.g. to start a running mean of them.
    update: (state, **inputs) -> (new_state, metrics), pure. The keyword arguments it names
      among `metrics` (the iteration's metrics so far), `step` (the iteration number),
      `params` (every network's current parameters), `outputs` (the phases' exported
      quantities, "<phase>/<name>") and `key` (a PRNG key of its own) are passed.
    after: the phase after which it runs (its new state is then visible to later phases), or
      None to run after all phases.
  """

  name: str
  init: Callable[..., PyTree]
  update: Callable[..., tuple[PyTree, Metrics]]
  after: str | None = None

  @property
  def inputs(self) -> tuple[str, ...]:
    """The keyword-only inputs `update` asks for (after the state)."""
    return _keyword_inputs(self.update, self.name)

  @property
  def init_inputs(self) -> tuple[str, ...]:
    """The keyword-only inputs `init` asks for (`params` or nothing)."""
    return _keyword_inputs(self.init, self.name, allowed=("params",))


def _keyword_inputs(fn, name: str, allowed=CONTROLLER_INPUTS) -> tuple[str, ...]:
  params = inspect.signature(fn).parameters.values()
  names = tuple(
    p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is inspect.Parameter.empty
  )
  unknown = set(names) - set(allowed)
  if unknown:
    raise ValueError(
      f"controller {name!r} asks for {sorted(unknown)}; it may ask for {', '.join(allowed)}"
    )
  return names


@dataclasses.dataclass(frozen=True)
class Network:
  """A network of the game with its optimiser.

  Attributes:
    module: the Flax module; called as module.apply(variables, x, train=...).
    optimizer: optax transformation updating its parameters.
    example_input: shape/dtype of one input batch, for initialisation.
  """

  module: Any
  optimizer: Any
  example_input: jax.ShapeDtypeStruct
