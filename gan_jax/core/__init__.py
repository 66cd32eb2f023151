"""The game-independent core: terms, phases, controllers, the TrainState, the compiled step,
registries, randomness and data parallelism."""

from gan_jax.core.phases import Controller, Network, Phase
from gan_jax.core.random import named_key, sample_noise
from gan_jax.core.registry import ConfigError, Registry, check_choice
from gan_jax.core.step import train_iteration
from gan_jax.core.terms import BALANCE, Context, Term, evaluate_terms
from gan_jax.core.train_state import TrainState, create_train_state

__all__ = [
  "BALANCE",
  "ConfigError",
  "Context",
  "Controller",
  "Network",
  "Phase",
  "Registry",
  "Term",
  "TrainState",
  "check_choice",
  "create_train_state",
  "evaluate_terms",
  "named_key",
  "sample_noise",
  "train_iteration",
]
