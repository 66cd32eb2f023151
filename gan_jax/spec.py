"""Turns a config into a static RunSpec: the one place config strings are read.

Everything downstream (the compiled step, the training loop, sampling, evaluation) receives
the RunSpec and never a ConfigDict; every name in the config is resolved here through a
registry (`game`, `model.name`, `objective.name`, `stabilisers`, `optim.*.name`), so an
invalid value fails before anything is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import ml_collections

from gan_jax import (
  games,  # noqa: F401  (registers the game families)
  stabilisers,  # noqa: F401  (registers the stabilisers)
)
from gan_jax.builder import GAMES, SpecBuilder, Summary, apply_stabilisers
from gan_jax.core import parallel
from gan_jax.core.phases import Controller, Network, Phase
from gan_jax.core.registry import ConfigError, read_section
from gan_jax.games.base import Game

DEFAULT_GAME = "unconditional"


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """Static description of a run.

  Attributes:
    game: the game (`gan_jax.games.base.Game`): computes the named quantities the terms ask
      for, initialises the networks and samples.
    networks: name -> Network (module, optimiser, example input).
    phases: the updates of one iteration, in order.
    controllers: state updates after phases.
    ema_decay: decay of the parameter EMA of `ema_networks`, or None.
    ema_networks: networks whose parameters get an EMA.
    image_shape: (H, W, C) of the data and of the generated images.
    batch_size: global batch size B.
    mesh: the device mesh the step runs on.
    summaries: extra image panels for the sample grids (e.g. the lens' view of real data).
    rebuild_at: step at which the run's spec changes (rebuild with build_spec(config, step)),
      or None.
    init_examples: real examples handed to the game's initialisation (None: batch_size).
  """

  game: Game
  networks: Mapping[str, Network]
  phases: tuple[Phase, ...]
  controllers: tuple[Controller, ...]
  ema_decay: float | None
  ema_networks: tuple[str, ...]
  image_shape: tuple[int, int, int]
  batch_size: int
  mesh: jax.sharding.Mesh
  summaries: tuple[Summary, ...] = ()
  rebuild_at: int | None = None
  init_examples: int | None = None

  @property
  def batches_per_iteration(self) -> int:
    """Real batches one iteration consumes (n_critic)."""
    return max(p.repeats for p in self.phases)


def build_spec(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None, step: int = 0
) -> RunSpec:
  """Builds the RunSpec of `config` on `mesh` (default: train.devices) for training step `step`.

  Raises:
    ConfigError: a value is invalid; the message names the field and the valid choices.
  """
  train = read_section(config, "train")
  data = read_section(config, "data")
  if mesh is None:
    mesh = parallel.make_mesh(train["devices"])
  batch_size = train["batch_size"]
  if batch_size % mesh.size:
    raise ConfigError(
      f"train.batch_size={batch_size} is not divisible by the {mesh.size} devices of the mesh"
    )
  if train["n_critic"] < 1:
    raise ConfigError(f"train.n_critic must be >= 1, got {train['n_critic']}")
  image_shape = (data["image_size"], data["image_size"], data["channels"])

  builder = SpecBuilder(config=config, step=step, image_shape=image_shape, mesh=mesh)
  finish = GAMES.get(config.get("game", DEFAULT_GAME), "game")(builder)
  apply_stabilisers(builder, config)
  game = finish(builder)
  ema_decay = train["ema_decay"] or None
  spec = RunSpec(
    game=game,
    networks=dict(builder.networks),
    phases=tuple(builder.phases),
    controllers=tuple(builder.controllers),
    ema_decay=ema_decay,
    ema_networks=builder.ema_networks if ema_decay else (),
    image_shape=image_shape,
    batch_size=batch_size,
    mesh=mesh,
    summaries=tuple(builder.summaries),
    rebuild_at=builder.rebuild_at,
    init_examples=builder.init_examples,
  )
  validate(spec)
  return spec


def validate(spec: RunSpec) -> None:
  """Checks that every phase updates known networks and every term asks only for quantities
  the game provides."""
  available = spec.game.quantities(tuple(c.name for c in spec.controllers))
  phase_names = [p.name for p in spec.phases]
  for phase in spec.phases:
    unknown = [n for n in phase.networks if n not in spec.networks]
    if unknown:
      raise ConfigError(
        f"phase {phase.name!r} updates unknown network(s) {unknown}; networks: "
        f"{sorted(spec.networks)}"
      )
    for term in phase.terms:
      missing = set(term.inputs) - available
      if missing:
        raise ConfigError(
          f"term {phase.name}/{term.name} asks for {sorted(missing)}, which "
          f"the game does not provide; available: {sorted(available)}"
        )
  for c in spec.controllers:
    if c.after is not None and c.after not in phase_names:
      raise ConfigError(
        f"controller {c.name!r} runs after unknown phase {c.after!r}; phases: {phase_names}"
      )
    _ = c.inputs  # raises on an unknown input
