"""Assembling a RunSpec: the game's family from the config, then stabilisers by name.

A game family is a function `(builder) -> finish` registered in `GAMES` (config field `game`):
it reads the model and objective sections, adds the networks, phases and controllers to the
builder, and returns `finish(builder) -> Game`, called once the stabilisers have edited the
builder. A stabiliser is a function `(builder, cfg, step) -> None` registered in
`STABILISERS`; it reads its own config section `cfg` (a dict) and edits the builder: adds
networks, terms, phases, controllers, image summaries. Listing its name in
`config.stabilisers` turns it on for any objective, with no change to the training step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core.phases import Controller, Network, Phase
from gan_jax.core.registry import ConfigError, Registry
from gan_jax.core.terms import Term
from gan_jax.optim import build_optimizer

GAMES = Registry("game")
STABILISERS = Registry("stabiliser")


@dataclasses.dataclass(frozen=True)
class Summary:
  """Image panels shown, in order, before the generated samples (e.g. the lens' view).

  Attributes:
    names: the panels' names.
    fn: (game, state, real images (N, H, W, C) in [-1, 1]) -> one image batch per name.
  """

  names: tuple[str, ...]
  fn: Callable[[Any, Any, jax.Array], tuple[jax.Array, ...]]


@dataclasses.dataclass
class SpecBuilder:
  """A mutable run description; `gan_jax.spec.build_spec` freezes it into a RunSpec.

  Attributes:
    config: the run's config (read-only here).
    step: the training step the spec is built for (stabilisers that change the game during
      training, like dropping the lens, look at it).
    image_shape: (H, W, C).
    mesh: the device mesh of the run.
    networks: name -> Network.
    objective: the adversarial objective (None for a game without one).
    phases: the iteration's phases, in order.
    controllers: the iteration's controllers, in order.
    real_view: network applied to real images before D (the lens), or None.
    ema_networks: networks whose parameters get an EMA (with train.ema_decay > 0).
    summaries: image panels for the sample grids.
    rebuild_at: the next step at which the spec changes (the loop rebuilds and recompiles
      then), or None.
    init_examples: real examples in the batch handed to `Game.init_variables` (None: the
      batch size); the semi-supervised game's data-dependent initialisation uses 500.
    compute_dtype: the dtype of the networks' activations (config train.compute_dtype, read
      by `gan_jax.spec.build_spec`); games and stabilisers build their modules with it as
      their `dtype`, and parameters stay float32.
  """

  config: Any
  step: int
  image_shape: tuple[int, int, int]
  mesh: jax.sharding.Mesh
  networks: dict[str, Network] = dataclasses.field(default_factory=dict)
  objective: Any = None
  phases: list[Phase] = dataclasses.field(default_factory=list)
  controllers: list[Controller] = dataclasses.field(default_factory=list)
  real_view: str | None = None
  ema_networks: tuple[str, ...] = ()
  summaries: list[Summary] = dataclasses.field(default_factory=list)
  rebuild_at: int | None = None
  init_examples: int | None = None
  compute_dtype: Any = jnp.float32

  def add_network(self, name: str, module: nn.Module, example_shape: tuple[int, ...]) -> None:
    """Adds a network; its optimiser comes from the config section optim.<name>.

    Args:
      name: the network's name (state, metrics and the optimiser's config section use it).
      module: the Flax module.
      example_shape: the shape of one float32 input batch, for initialisation.
    """
    if name in self.networks:
      raise ConfigError(f"network {name!r} is added twice")
    if name not in self.config.optim:
      raise ConfigError(f"network {name!r} needs an optimiser section optim.{name}")
    self.networks[name] = Network(
      module=module,
      optimizer=build_optimizer(self.config.optim[name].to_dict(), f"optim.{name}"),
      example_input=jax.ShapeDtypeStruct(example_shape, jnp.float32),
    )

  def phase(self, name: str) -> Phase:
    for p in self.phases:
      if p.name == name:
        return p
    raise KeyError(f"no phase {name!r}; phases: {[p.name for p in self.phases]}")

  def update_phase(self, name: str, **changes) -> None:
    self.phases = [dataclasses.replace(p, **changes) if p.name == name else p for p in self.phases]

  def add_terms(self, phase_name: str, *terms: Term) -> None:
    self.update_phase(phase_name, terms=self.phase(phase_name).terms + tuple(terms))

  def schedule_rebuild(self, step: int) -> None:
    if step > self.step:
      self.rebuild_at = step if self.rebuild_at is None else min(self.rebuild_at, step)


def stabiliser_names(value: str) -> tuple[str, ...]:
  """Parses config.stabilisers ("lens,advas") into names."""
  return tuple(n.strip() for n in value.split(",") if n.strip())


def apply_stabilisers(builder: SpecBuilder, config) -> None:
  """Applies every stabiliser named in config.stabilisers, in order."""
  for name in stabiliser_names(config.get("stabilisers", "")):
    apply = STABILISERS.get(name, "stabilisers")
    if name not in config:
      raise ConfigError(f"stabiliser {name!r} is on but the config has no section {name!r}")
    apply(builder, config[name].to_dict(), builder.step)
