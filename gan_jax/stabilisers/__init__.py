"""Stabilisers: named additions to the base game, switched on by `config.stabilisers`.

Importing this package registers them in `gan_jax.builder.STABILISERS`.
"""

from gan_jax.stabilisers import advas, lens

__all__ = ["advas", "lens"]
