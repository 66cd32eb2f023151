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
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax import (
  games,  # noqa: F401  (registers the game families)
  stabilisers,  # noqa: F401  (registers the stabilisers)
)
from gan_jax.builder import GAMES, SpecBuilder, Summary, apply_stabilisers
from gan_jax.core import parallel, xla_cpu
from gan_jax.core.phases import Controller, Network, Phase
from gan_jax.core.registry import ConfigError, check_choice, read_section
from gan_jax.games.base import Game

DEFAULT_GAME = "unconditional"
# train.compute_dtype -> the dtype of the networks' activations (docs/precision.md). Parameters,
# optimiser states, normalisation statistics and losses are float32 with either.
COMPUTE_DTYPES = {"float32": jnp.dtype(jnp.float32), "bfloat16": jnp.dtype(jnp.bfloat16)}
DEFAULT_COMPUTE_DTYPE = "float32"


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
    compute_dtype: the dtype of the networks' activations (train.compute_dtype); the
      networks were built with it as their `dtype`.
    cpu_convolutions: the kernels that run the convolutions on CPU (train.cpu_convolutions,
      `gan_jax.core.xla_cpu`).
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
  compute_dtype: jnp.dtype = COMPUTE_DTYPES[DEFAULT_COMPUTE_DTYPE]
  cpu_convolutions: str = xla_cpu.DEFAULT_CONVOLUTION_KERNELS

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
  validate_config(config)
  train = read_section(config, "train")
  data = read_section(config, "data")
  if mesh is None:
    mesh = parallel.make_mesh(train["devices"])
  batch_size = train["batch_size"]
  if batch_size % mesh.size:
    raise ConfigError(
      f"train.batch_size={batch_size} is not divisible by the {mesh.size} devices of the mesh"
    )
  image_shape = (data["image_size"], data["image_size"], data["channels"])

  dtype = compute_dtype(config)
  builder = SpecBuilder(
    config=config, step=step, image_shape=image_shape, mesh=mesh, compute_dtype=dtype
  )
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
    compute_dtype=dtype,
    cpu_convolutions=cpu_convolutions(config),
  )
  validate(spec)
  return spec


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
  """The activation dtype that train.compute_dtype names ("float32" when the field is absent,
  as in the config.json of runs recorded before it existed).

  Raises:
    ConfigError: the name is not one of `COMPUTE_DTYPES`.
  """
  name = read_section(config, "train").get("compute_dtype", DEFAULT_COMPUTE_DTYPE)
  return COMPUTE_DTYPES[check_choice(name, tuple(COMPUTE_DTYPES), "train.compute_dtype")]


def cpu_convolutions(config: ml_collections.ConfigDict) -> str:
  """The CPU convolution kernels that train.cpu_convolutions names (the default when the field
  is absent, as in the config.json of runs recorded before it existed).

  Raises:
    ConfigError: the name is not one of `xla_cpu.CONVOLUTION_KERNELS`.
  """
  name = read_section(config, "train").get("cpu_convolutions", xla_cpu.DEFAULT_CONVOLUTION_KERNELS)
  return check_choice(name, xla_cpu.CONVOLUTION_KERNELS, "train.cpu_convolutions")


@dataclasses.dataclass(frozen=True)
class Range:
  """The valid values of a numeric config field.

  Attributes:
    kind: int (bools refused) or float (ints accepted).
    low: the smallest valid value (inclusive), or None.
    high: the bound above, or None.
    high_open: `high` itself is invalid.
    note: what a special value means, shown in the error (e.g. "0 = all").
  """

  kind: type
  low: float | None = None
  high: float | None = None
  high_open: bool = False
  note: str = ""

  def describe(self) -> str:
    what = "an int" if self.kind is int else "a number"
    if self.low is not None and self.high is not None:
      text = f"{what} in [{self.low}, {self.high}{')' if self.high_open else ']'}"
    elif self.low is not None:
      text = f"{what} >= {self.low}"
    elif self.high is not None:
      text = f"{what} {'<' if self.high_open else '<='} {self.high}"
    else:
      text = what
    return text + (f" ({self.note})" if self.note else "")

  def accepts(self, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
      return False
    if self.kind is int and not isinstance(value, (int, np.integer)):
      return False
    # Comparisons with NaN are false, so a NaN passes: the training loop's non-finite check
    # names the metric and step where it shows up.
    too_low = self.low is not None and value < self.low
    too_high = self.high is not None and (
      value >= self.high if self.high_open else value > self.high
    )
    return not (too_low or too_high)


_PERIOD = Range(int, 0, note="0 = only at the last step")
_FRACTION = Range(float, 0, 1, high_open=True)

# Numeric fields of the sections every run has; a field absent from a config is not checked.
TRAIN_FIELDS = {
  "steps": Range(int, 1),
  "batch_size": Range(int, 1),
  "n_critic": Range(int, 1),
  "devices": Range(int, 0, note="0 = all"),
  "log_every": _PERIOD,
  "sample_every": _PERIOD,
  "checkpoint_every": _PERIOD,
  "num_samples": Range(int, 1),
  "keep_checkpoints": Range(int, 1),
  "prefetch": Range(int, 0),
  "ema_decay": Range(float, 0, 1, high_open=True, note="0 = no EMA"),
}
# The fields of every optimiser section optim.<network>.
OPTIM_FIELDS = {
  "learning_rate": Range(float, 0),
  "b1": _FRACTION,
  "b2": _FRACTION,
  "eps": Range(float, 0),
  "eps_root": Range(float, 0),
  "decay": _FRACTION,
  "momentum": _FRACTION,
  "lr_decay_start": Range(int, 0, note="0 = constant"),
  "lr_decay_end": Range(int, 0),
}
# Fields of the model section that several model families share.
MODEL_FIELDS = {
  "width": Range(int, 1),
  "discriminator_width": Range(int, 1),
  "z_dim": Range(int, 1),
  "hidden_dim": Range(int, 1),
  "bn_momentum": Range(float, 0, 1),
  "minibatch_kernels": Range(int, 0, note="0 = off"),
  "minibatch_kernel_dim": Range(int, 1),
  "vbn_reference_size": Range(int, 0, note="0 = train.batch_size"),
  "input_dropout": _FRACTION,
  "hidden_dropout": _FRACTION,
  "input_noise": Range(float, 0),
  "hidden_noise": Range(float, 0),
}
OTHER_FIELDS = {
  "seed": Range(int, 0),
  "eval.every": Range(int, 0, note="0 = no evaluation during training"),
}


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks the numeric fields of the train and optim sections, the model's common ones,
  eval.every, the seed, train.compute_dtype and train.cpu_convolutions.

  Raises:
    ConfigError: a value is out of range or of the wrong type; the message names the field
      and its valid range (or choices).
  """

  def check(field: str, value, valid: Range) -> None:
    if not valid.accepts(value):
      raise ConfigError(
        f"invalid value {value!r} for config field {field}; expected {valid.describe()}"
      )

  train = read_section(config, "train")
  for name, valid in TRAIN_FIELDS.items():
    if name in train:
      check(f"train.{name}", train[name], valid)
  model = config.get("model") or {}
  for name, valid in MODEL_FIELDS.items():
    if name in model:
      check(f"model.{name}", model[name], valid)
  for network, section in (config.get("optim") or {}).items():
    for name, valid in OPTIM_FIELDS.items():
      if name in section:
        check(f"optim.{network}.{name}", section[name], valid)
  for path, valid in OTHER_FIELDS.items():
    section, _, name = path.rpartition(".")
    holder = config.get(section) if section else config
    if holder is not None and name in holder:
      check(path, holder[name], valid)
  compute_dtype(config)
  cpu_convolutions(config)


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
