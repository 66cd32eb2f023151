"""Turns a config into a static RunSpec: the one place config strings are read.

Everything downstream (the compiled step, the training loop, evaluation) receives the RunSpec
and never a ConfigDict; every name in the config is resolved here through a registry, so an
invalid value fails before anything is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import ml_collections

from gan_jax import parallel
from gan_jax import stabilisers  # pylint: disable=unused-import  (registers the stabilisers)
from gan_jax.builder import SpecBuilder, Summary, apply_stabilisers
from gan_jax.game import AdversarialGame, Controller, Network, Phase
from gan_jax.models import MODELS
from gan_jax.objectives import OBJECTIVES
from gan_jax.optim import build_optimizer
from gan_jax.registry import ConfigError, check_choice


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """Static description of a run.

  Attributes:
    game: computes the named quantities the terms ask for.
    networks: name -> Network (module, optimiser, example input).
    phases: the updates of one iteration, in order.
    controllers: state updates after the phases.
    ema_decay: decay of the parameter EMA of `ema_networks`, or None.
    ema_networks: networks whose parameters get an EMA.
    image_shape: (H, W, C) of the data and of G's output.
    batch_size: global batch size B.
    mesh: the device mesh the step runs on.
    summaries: extra image panels for the sample grids (e.g. the lens' view of real data).
    rebuild_at: step at which the run's spec changes (rebuild with build_spec(config, step)),
      or None.
  """
  game: AdversarialGame
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

  @property
  def batches_per_iteration(self) -> int:
    """Real batches one iteration consumes (n_critic)."""
    return max(p.repeats for p in self.phases)

  @property
  def z_dim(self) -> int:
    return self.game.z_dim


def _section(config: ml_collections.ConfigDict, name: str) -> dict:
  if name not in config:
    raise ConfigError(f"config has no section {name!r}")
  return config[name].to_dict()


def build_spec(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None,
               step: int = 0) -> RunSpec:
  """Builds the RunSpec of `config` on `mesh` (default: all devices) for training step `step`."""
  train = _section(config, "train")
  data = _section(config, "data")
  model_cfg = _section(config, "model")
  if mesh is None:
    mesh = parallel.make_mesh(train["devices"])
  batch_size = train["batch_size"]
  if batch_size % mesh.size:
    raise ConfigError(f"train.batch_size={batch_size} is not divisible by the {mesh.size} "
                      "devices of the mesh")
  if train["n_critic"] < 1:
    raise ConfigError(f"train.n_critic must be >= 1, got {train['n_critic']}")
  check_choice(model_cfg["z_dist"], ("normal", "uniform"), "model.z_dist")
  image_shape = (data["image_size"], data["image_size"], data["channels"])

  modules = MODELS.get(model_cfg["name"], "model.name")(model_cfg, image_shape)
  objective_cfg = _section(config, "objective")
  objective = OBJECTIVES.get(objective_cfg["name"], "objective.name")(objective_cfg)
  builder = SpecBuilder(
      config=config, step=step, image_shape=image_shape, networks={}, objective=objective,
      phases=[Phase("d", "discriminator", objective.discriminator, repeats=train["n_critic"],
                    constraint=objective.discriminator_constraint,
                    update_scale=objective.update_scale),
              Phase("g", "generator", objective.generator, update_scale=objective.update_scale,
                    simultaneous=objective.simultaneous)],
      controllers=list(objective.controllers), summaries=list(objective.summaries))
  z_dim = model_cfg["z_dim"]
  example_shapes = {"generator": (1, z_dim), "discriminator": (1,) + image_shape}
  for name, module in modules.items():
    builder.add_network(name, module, example_shapes[name])
  apply_stabilisers(builder, config)

  game = AdversarialGame(networks=builder.networks, z_dim=z_dim, z_dist=model_cfg["z_dist"],
                         real_view=builder.real_view,
                         adversary_terms=builder.phase("d").terms,
                         shard=parallel.batch_constraint(mesh))
  ema_decay = train["ema_decay"] or None
  spec = RunSpec(game=game, networks=builder.networks, phases=tuple(builder.phases),
                 controllers=tuple(builder.controllers), ema_decay=ema_decay,
                 ema_networks=("generator",) if ema_decay else (), image_shape=image_shape,
                 batch_size=batch_size, mesh=mesh, summaries=tuple(builder.summaries),
                 rebuild_at=builder.rebuild_at)
  validate(spec)
  return spec


def validate(spec: RunSpec) -> None:
  """Checks that every term asks only for quantities the game provides."""
  available = spec.game.quantities(tuple(c.name for c in spec.controllers))
  for phase in spec.phases:
    if phase.network not in spec.networks:
      raise ConfigError(f"phase {phase.name!r} updates unknown network {phase.network!r}")
    for term in phase.terms:
      missing = set(term.inputs) - available
      if missing:
        raise ConfigError(f"term {phase.name}/{term.name} asks for {sorted(missing)}, which "
                          f"the game does not provide; available: {sorted(available)}")
