"""Turns a config into a static RunSpec: the one place config strings are read.

Everything downstream (the compiled step, the training loop, evaluation) receives the RunSpec
and never a ConfigDict; every name in the config is resolved here through a registry, so an
invalid value fails before anything is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax import parallel
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

  @property
  def batches_per_iteration(self) -> int:
    """Real batches one iteration consumes (n_critic)."""
    return max(p.repeats for p in self.phases)

  @property
  def z_dim(self) -> int:
    return self.game.z_dim


def _section(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  if name not in config:
    raise ConfigError(f"config has no section {name!r}")
  return config[name].to_dict()


def build_spec(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None
               ) -> RunSpec:
  """Builds the RunSpec of `config` on `mesh` (default: all devices)."""
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
  optim = _section(config, "optim")
  z_dim = model_cfg["z_dim"]
  example_inputs = {
      "generator": jax.ShapeDtypeStruct((1, z_dim), jnp.float32),
      "discriminator": jax.ShapeDtypeStruct((1,) + image_shape, jnp.float32),
  }
  missing = sorted(set(modules) - set(optim))
  if missing:
    raise ConfigError(f"config has no optimiser section for {missing} (optim.<network>)")
  networks = {
      name: Network(module=module, optimizer=build_optimizer(optim[name], f"optim.{name}"),
                    example_input=example_inputs[name])
      for name, module in modules.items()
  }

  objective_cfg = _section(config, "objective")
  objective = OBJECTIVES.get(objective_cfg["name"], "objective.name")(objective_cfg)
  phases = (
      Phase("d", "discriminator", objective.discriminator, repeats=train["n_critic"],
            constraint=objective.discriminator_constraint),
      Phase("g", "generator", objective.generator),
  )
  game = AdversarialGame(networks=networks, z_dim=z_dim, z_dist=model_cfg["z_dist"],
                         shard=parallel.batch_constraint(mesh))
  ema_decay = train["ema_decay"] or None
  spec = RunSpec(game=game, networks=networks, phases=phases, controllers=(),
                 ema_decay=ema_decay, ema_networks=("generator",) if ema_decay else (),
                 image_shape=image_shape, batch_size=batch_size, mesh=mesh)
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
