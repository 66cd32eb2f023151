"""Losses as pure functions with keyword-only arguments returning `(scalar, metrics)`.

Nothing here imports a registry or a config: `gan_jax.objectives` and the stabilisers bind
these functions to the config and register them.
"""

from gan_jax.losses.adversarial import (
  clip_weights,
  gradient_penalty,
  lsgan_discriminator_loss,
  lsgan_generator_loss,
  minimax_discriminator_loss,
  minimax_generator_loss,
  non_saturating_generator_loss,
  wasserstein_critic_loss,
  wasserstein_generator_loss,
)
from gan_jax.losses.began import began_discriminator_loss, began_generator_loss, convergence_measure
from gan_jax.losses.cycle import cycle_consistency_loss, identity_loss, mean_absolute_error
from gan_jax.losses.improved import (
  FEATURE_DISTANCES,
  feature_matching_loss,
  historical_averaging_penalty,
)
from gan_jax.losses.lens import (
  lens_lsgan_loss,
  lens_minimax_loss,
  lens_wasserstein_loss,
  reconstruction_loss,
)
from gan_jax.losses.semi_supervised import (
  real_log_mass,
  real_probability,
  supervised_loss,
  unsupervised_loss,
)

__all__ = [
  "FEATURE_DISTANCES",
  "began_discriminator_loss",
  "began_generator_loss",
  "clip_weights",
  "convergence_measure",
  "cycle_consistency_loss",
  "feature_matching_loss",
  "gradient_penalty",
  "historical_averaging_penalty",
  "identity_loss",
  "lens_lsgan_loss",
  "lens_minimax_loss",
  "lens_wasserstein_loss",
  "lsgan_discriminator_loss",
  "lsgan_generator_loss",
  "mean_absolute_error",
  "minimax_discriminator_loss",
  "minimax_generator_loss",
  "non_saturating_generator_loss",
  "real_log_mass",
  "real_probability",
  "reconstruction_loss",
  "supervised_loss",
  "unsupervised_loss",
  "wasserstein_critic_loss",
  "wasserstein_generator_loss",
]
