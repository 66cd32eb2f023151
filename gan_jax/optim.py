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


def learning_rate(cfg: Mapping[str, Any]) -> float | optax.Schedule:
  """The section's learning rate: a constant, or with `lr_decay_start` > 0 a schedule that is
  constant up to update `lr_decay_start` and falls linearly to 0 at update `lr_decay_end`
  (the released code of Salimans et al. 2016 for CIFAR-10 and SVHN, there per epoch:
  lr · min(3 - epoch / E, 1) over 3E epochs). Sections without the fields are constant."""
  start = cfg.get("lr_decay_start", 0)
  if not start:
    return cfg["learning_rate"]
  end = cfg.get("lr_decay_end", 0)
  if end <= start:
    raise ValueError(f"lr_decay_end={end} must exceed lr_decay_start={start}")
  return optax.linear_schedule(cfg["learning_rate"], 0.0, end - start, start)


@OPTIMIZERS.register("adam")
def _adam(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  # eps_root (ε inside the square root) is the released Theano code's Adam of Salimans et al.
  # (2016); sections without it keep optax's default 0.
  return optax.adam(
    learning_rate=learning_rate(cfg),
    b1=cfg["b1"],
    b2=cfg["b2"],
    eps=cfg["eps"],
    eps_root=cfg.get("eps_root", 0.0),
  )


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
