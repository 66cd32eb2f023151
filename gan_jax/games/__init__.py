"""Game families behind one protocol (`gan_jax.games.base.Game`), found by name through
`gan_jax.builder.GAMES` (config field `game`).

  unconditional   G(z) against D, optionally with a lens in front of D (DCGAN family, WGAN,
                  LSGAN, BEGAN; `gan_jax.games.unconditional`).
"""

from gan_jax.games import unconditional
from gan_jax.games.base import GENERATED, Game, forward, init_networks
from gan_jax.games.unconditional import UnconditionalGame

__all__ = ["GENERATED", "Game", "UnconditionalGame", "forward", "init_networks", "unconditional"]
