"""Stabilisers: named additions to the base game, switched on by `config.stabilisers`, and
BEGAN's equilibrium controller.

Importing this package registers them in `gan_jax.builder.STABILISERS`: `lens` (Tempered GAN),
`advas` (the Adversary's Assistant), `vanishing_residual` (BEGAN Sec. 3.5.1),
`feature_matching` and `historical_averaging` (Salimans et al. 2016).
"""

from gan_jax.stabilisers import advas, began, improved, lens

__all__ = ["advas", "began", "improved", "lens"]
