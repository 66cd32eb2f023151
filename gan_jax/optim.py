"""Optimisers by name (config sections `optim.generator`, `optim.discriminator`, ...).

Hyperparameters come from the config and are not stored in the optimiser state, so a resumed
run uses the config it is resumed with (a lower learning rate, say). A controller that changes
the effective learning rate during training (BEGAN's halving) does so through a scale in
`TrainState.aux` (see `Phase.update_scale`).
"""

from collections.abc import Mapping
from typing import Any

import optax

from gan_jax.core.registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("adam")
def _adam(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  return optax.adam(learning_rate=cfg["learning_rate"], b1=cfg["b1"], b2=cfg["b2"], eps=cfg["eps"])


@OPTIMIZERS.register("rmsprop")
def _rmsprop(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  # eps outside the square root, as in the PyTorch RMSprop of the reference WGAN code.
  return optax.rmsprop(
    learning_rate=cfg["learning_rate"], decay=cfg["decay"], eps=cfg["eps"], eps_in_sqrt=False
  )


@OPTIMIZERS.register("sgd")
def _sgd(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  return optax.sgd(learning_rate=cfg["learning_rate"], momentum=cfg.get("momentum") or None)


def build_optimizer(cfg: Mapping[str, Any], field: str) -> optax.GradientTransformation:
  """Builds the optimiser named by cfg["name"]; `field` names the config section for errors."""
  builder = OPTIMIZERS.get(cfg["name"], f"{field}.name")
  try:
    return builder(cfg)
  except KeyError as e:
    raise KeyError(f"config section {field} lacks field {e}") from None
