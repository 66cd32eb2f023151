"""Optimisers by name (config sections `optim.generator`, `optim.discriminator`, ...).

Every optimiser is wrapped in `optax.inject_hyperparams`, so its learning rate is part of the
optimiser state in the TrainState: it is checkpointed, logged, and a controller (BEGAN's
learning-rate halving) can change it inside the compiled step.
"""

from collections.abc import Mapping
from typing import Any

import optax

from gan_jax.registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("adam")
def _adam(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.adam)(learning_rate=cfg["learning_rate"],
                                              b1=cfg["b1"], b2=cfg["b2"], eps=cfg["eps"])


@OPTIMIZERS.register("rmsprop")
def _rmsprop(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  # eps outside the square root, as in the PyTorch RMSprop of the reference WGAN code.
  return optax.inject_hyperparams(optax.rmsprop, static_args=("eps_in_sqrt",))(
      learning_rate=cfg["learning_rate"], decay=cfg["decay"], eps=cfg["eps"], eps_in_sqrt=False)


@OPTIMIZERS.register("sgd")
def _sgd(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.sgd)(learning_rate=cfg["learning_rate"],
                                             momentum=cfg.get("momentum") or None)


def build_optimizer(cfg: Mapping[str, Any], field: str) -> optax.GradientTransformation:
  """Builds the optimiser named by cfg["name"]; `field` names the config section for errors."""
  builder = OPTIMIZERS.get(cfg["name"], f"{field}.name")
  try:
    return builder(cfg)
  except KeyError as e:
    raise KeyError(f"config section {field} lacks field {e}") from None
