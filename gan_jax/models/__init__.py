"""Networks, found by name through `MODELS` (config field `model.name`).

A model builder takes the `model` config section (as a plain dict) and the data's image shape
and returns the game's networks as Flax modules keyed by role ("generator", "discriminator").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flax import linen as nn

from gan_jax.core.registry import ConfigError, Registry, check_choice
from gan_jax.models import began as began_lib
from gan_jax.models.dcgan import Discriminator, Generator
from gan_jax.models.initializers import INITIALIZERS

MODELS = Registry("model")


@MODELS.register("dcgan")
def dcgan(cfg: Mapping[str, Any], image_shape: tuple[int, int, int]) -> dict[str, nn.Module]:
  """DCGAN G and D (Tempered GAN Fig. 3); `discriminator_norm="none"` gives the WGAN-GP critic."""
  height, width, channels = image_shape
  if height != width:
    raise ValueError(f"DCGAN needs square images, got {image_shape}")
  return {
    "generator": Generator(
      image_size=height,
      channels=channels,
      width=cfg["width"],
      norm=cfg["generator_norm"],
      init_scheme=cfg["init"],
      bn_momentum=cfg["bn_momentum"],
    ),
    "discriminator": Discriminator(
      width=cfg["width"],
      norm=cfg["discriminator_norm"],
      init_scheme=cfg["init"],
      bn_momentum=cfg["bn_momentum"],
    ),
  }


@MODELS.register("began")
def began_networks(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int]
) -> dict[str, nn.Module]:
  """BEGAN's G (the decoder's architecture) and auto-encoder D (Berthelot et al. 2017,
  Sec. 3.5, Fig. 1)."""
  height, image_width, channels = image_shape
  if height != image_width:
    raise ConfigError(f"BEGAN needs square images, got {image_shape}")
  began_lib.num_scales(height)
  eta = check_choice(cfg["eta"], (1, 2), "model.eta")
  return {
    "generator": began_lib.Decoder(
      image_size=height,
      channels=channels,
      width=cfg["width"],
      skip=cfg["skip"],
      init_scheme=cfg["init"],
    ),
    "discriminator": began_lib.AutoEncoder(
      width=cfg["width"],
      hidden_dim=cfg["hidden_dim"],
      eta=eta,
      skip=cfg["skip"],
      init_scheme=cfg["init"],
    ),
  }


__all__ = ["INITIALIZERS", "MODELS", "Discriminator", "Generator", "began_lib"]
