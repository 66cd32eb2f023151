"""Networks, found by name through `MODELS` (config field `model.name`).

A model builder takes the `model` config section (as a plain dict), the data's image shape and
the activations' dtype (`dtype`, from train.compute_dtype through the RunSpec; float32 when
left out) and returns the game's networks as Flax modules keyed by role ("generator",
"discriminator"). Every module computes in `dtype` and keeps its parameters in float32; what
it returns into a loss (scores, logits, images, sown features) is float32 (docs/precision.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from gan_jax.core.registry import ConfigError, Registry, check_choice
from gan_jax.models import began as began_lib
from gan_jax.models import cyclegan as cyclegan_lib
from gan_jax.models import dcgan as dcgan_lib
from gan_jax.models import semi_supervised as semi_lib
from gan_jax.models.dcgan import Discriminator, Generator
from gan_jax.models.initializers import INITIALIZERS

MODELS = Registry("model")
DType = Any


@MODELS.register("dcgan")
def dcgan(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int], dtype: DType = jnp.float32
) -> dict[str, nn.Module]:
  """DCGAN G and D (Tempered GAN Fig. 3); `discriminator_norm="none"` gives the WGAN-GP critic.

  Optional: minibatch discrimination in D (`minibatch_kernels` > 0) and virtual batch
  normalisation (`generator_norm` / `discriminator_norm` = "virtual_batch", reference batch of
  `vbn_reference_size` examples), Salimans et al. 2016, Sec. 3.2 and 3.5.
  """
  height, width, channels = image_shape
  if height != width:
    raise ValueError(f"DCGAN needs square images, got {image_shape}")
  g_norm = check_choice(cfg["generator_norm"], dcgan_lib.NORMS, "model.generator_norm")
  d_norm = check_choice(cfg["discriminator_norm"], dcgan_lib.NORMS, "model.discriminator_norm")
  # The fields of Salimans et al. 2016's layers are read with defaults (off), so configs
  # written before them (e.g. a run's config.json) build the same networks.
  reference_size = int(cfg.get("vbn_reference_size", 0))
  if "virtual_batch" in (g_norm, d_norm) and reference_size < 1:
    raise ConfigError(
      f"model.vbn_reference_size must be >= 1 with virtual batch norm, got {reference_size}"
    )
  kernels = int(cfg.get("minibatch_kernels", 0))
  kernel_dim = int(cfg.get("minibatch_kernel_dim", 5))
  if kernels < 0 or (kernels and kernel_dim < 1):
    raise ConfigError(
      f"model.minibatch_kernels ({kernels}) must be >= 0 and model.minibatch_kernel_dim "
      f"({kernel_dim}) >= 1"
    )
  return {
    "generator": Generator(
      image_size=height,
      channels=channels,
      width=cfg["width"],
      norm=g_norm,
      init_scheme=cfg["init"],
      bn_momentum=cfg["bn_momentum"],
      vbn_reference_size=reference_size,
      dtype=dtype,
    ),
    "discriminator": Discriminator(
      width=cfg["width"],
      norm=d_norm,
      init_scheme=cfg["init"],
      bn_momentum=cfg["bn_momentum"],
      minibatch_kernels=kernels,
      minibatch_kernel_dim=kernel_dim,
      minibatch_exclude_self=bool(cfg.get("minibatch_exclude_self", True)),
      vbn_reference_size=reference_size,
      dtype=dtype,
    ),
  }


@MODELS.register("began")
def began_networks(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int], dtype: DType = jnp.float32
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
      dtype=dtype,
    ),
    "discriminator": began_lib.AutoEncoder(
      width=cfg["width"],
      hidden_dim=cfg["hidden_dim"],
      eta=eta,
      skip=cfg["skip"],
      init_scheme=cfg["init"],
      dtype=dtype,
    ),
  }


def _tuple_of_ints(value, field: str) -> tuple[int, ...]:
  """A config tuple/list of positive ints (or a comma-separated string, as from a flag)."""
  if isinstance(value, str):
    value = [v for v in value.split(",") if v.strip()]
  try:
    out = tuple(int(v) for v in value)
  except (TypeError, ValueError):
    out = ()
  if not out or min(out) < 1:
    raise ConfigError(f"invalid value {value!r} for config field {field}; expected positive ints")
  return out


@MODELS.register("semi_mlp")
def semi_mlp(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int], dtype: DType = jnp.float32
) -> dict[str, nn.Module]:
  """The permutation-invariant MNIST MLPs of the semi-supervised K+1 GAN (Salimans et al. 2016,
  Sec. 5.1): weight-normalised D with Gaussian noise, batch-normalised G."""
  return {
    "generator": semi_lib.MLPGenerator(
      image_shape=tuple(image_shape),
      hidden=_tuple_of_ints(cfg["generator_hidden"], "model.generator_hidden"),
      bn_momentum=cfg["bn_momentum"],
      dtype=dtype,
    ),
    "discriminator": semi_lib.MLPClassifier(
      hidden=_tuple_of_ints(cfg["discriminator_hidden"], "model.discriminator_hidden"),
      num_classes=cfg["num_classes"],
      input_noise=cfg["input_noise"],
      hidden_noise=cfg["hidden_noise"],
      dtype=dtype,
    ),
  }


@MODELS.register("semi_conv")
def semi_conv(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int], dtype: DType = jnp.float32
) -> dict[str, nn.Module]:
  """The CIFAR-10 / SVHN conv nets of the semi-supervised K+1 GAN (Salimans et al. 2016,
  Sec. 5.2-5.3): weight-normalised D with dropout, transposed-conv G."""
  height, width, _ = image_shape
  g_widths = _tuple_of_ints(cfg["generator_widths"], "model.generator_widths")
  if height != width or height % 2 ** len(g_widths) or height < 2 ** (len(g_widths) + 1):
    raise ConfigError(
      f"semi_conv needs square images whose size is a multiple of 2**{len(g_widths)} "
      f"(model.generator_widths has {len(g_widths)} entries), got {image_shape}"
    )
  return {
    "generator": semi_lib.ConvGenerator(
      image_shape=tuple(image_shape),
      widths=g_widths,
      bn_momentum=cfg["bn_momentum"],
      dtype=dtype,
    ),
    "discriminator": semi_lib.ConvClassifier(
      widths=_tuple_of_ints(cfg["discriminator_widths"], "model.discriminator_widths"),
      num_classes=cfg["num_classes"],
      input_dropout=cfg["input_dropout"],
      hidden_dropout=cfg["hidden_dropout"],
      dtype=dtype,
    ),
  }


@MODELS.register("cyclegan_resnet")
def cyclegan_resnet(
  cfg: Mapping[str, Any], image_shape: tuple[int, int, int], dtype: DType = jnp.float32
) -> dict[str, nn.Module]:
  """CycleGAN's ResNet generators and PatchGAN discriminators (Zhu et al. 2017, Appendix 7.2;
  `gan_jax.models.cyclegan`), for G: X -> Y, F: Y -> X, D_X and D_Y.

  Networks: "generator_xy" (G), "generator_yx" (F), "discriminator_x", "discriminator_y"; with
  model.shared_encoder, "encoder" (one, for both directions) and "decoder_y" (G's),
  "decoder_x" (F's) in place of the two generators. Both domains have `image_shape`.
  """
  height, width, channels = image_shape
  if height != width or height % 4 or height < 8:
    raise ConfigError(
      f"the CycleGAN networks need square images whose side is a multiple of 4 (>= 8), got "
      f"{image_shape}"
    )
  g_width, n_blocks = int(cfg["width"]), int(cfg["n_blocks"])
  d_width, d_layers = int(cfg["discriminator_width"]), int(cfg["discriminator_layers"])
  if min(g_width, d_width, d_layers) < 1 or n_blocks < 0:
    raise ConfigError(
      f"model.width ({g_width}), model.discriminator_width ({d_width}) and "
      f"model.discriminator_layers ({d_layers}) must be >= 1, model.n_blocks ({n_blocks}) >= 0"
    )
  if cyclegan_lib.patch_output_size(height, d_layers) < 1:
    raise ConfigError(
      f"model.discriminator_layers={d_layers} leaves no output at {height} px; use fewer"
    )
  if cfg["shared_encoder"]:
    first = cyclegan_lib.encoder_blocks(n_blocks)
    generators = {
      "encoder": cyclegan_lib.Encoder(g_width, first, dtype=dtype),
      **{
        name: cyclegan_lib.Decoder(g_width, n_blocks - first, channels, dtype=dtype)
        for name in ("decoder_x", "decoder_y")
      },
    }
  else:
    generators = {
      name: cyclegan_lib.ResnetGenerator(channels, g_width, n_blocks, dtype=dtype)
      for name in ("generator_xy", "generator_yx")
    }
  return {
    **generators,
    **{
      name: cyclegan_lib.PatchDiscriminator(d_width, d_layers, dtype=dtype)
      for name in ("discriminator_x", "discriminator_y")
    },
  }


__all__ = [
  "INITIALIZERS",
  "MODELS",
  "Discriminator",
  "Generator",
  "began_lib",
  "cyclegan_lib",
  "semi_lib",
]
