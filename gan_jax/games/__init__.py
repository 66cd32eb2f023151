"""Game families behind one protocol (`gan_jax.games.base.Game`), found by name through
`gan_jax.builder.GAMES` (config field `game`).

  unconditional   G(z) against D, optionally with a lens in front of D (DCGAN family, WGAN,
                  LSGAN, BEGAN; `gan_jax.games.unconditional`).
  cyclegan        unpaired translation (Zhu et al. 2017): G: X -> Y, F: Y -> X against D_X
                  and D_Y with cycle-consistency and an image pool (`gan_jax.games.cyclegan`).
  semi_supervised the K+1 classifier GAN of Salimans et al. (2016, Sec. 5): D classifies
                  labelled data and tells real from G(z); G trained by feature matching
                  (`gan_jax.games.semi_supervised`).
"""

from gan_jax.games import cyclegan, semi_supervised, unconditional
from gan_jax.games.base import GENERATED, Game, StaticQuantities, forward, init_networks
from gan_jax.games.cyclegan import CycleGanGame
from gan_jax.games.semi_supervised import SemiSupervisedGame
from gan_jax.games.unconditional import UnconditionalGame

__all__ = [
  "GENERATED",
  "CycleGanGame",
  "Game",
  "SemiSupervisedGame",
  "StaticQuantities",
  "UnconditionalGame",
  "cyclegan",
  "forward",
  "init_networks",
  "semi_supervised",
  "unconditional",
]
