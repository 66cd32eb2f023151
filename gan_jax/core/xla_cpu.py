"""XLA:CPU compile options of the training iteration: which library runs the convolutions.

XLA:CPU (jaxlib 0.10) hands matrix products, reductions and convolutions to YNNPACK
(`__ynn_fusion` custom fusions in the compiled HLO). For the convolutions of these networks its
own Eigen-based convolution kernels are faster on this project's 2-core CPU: whole iterations,
both ways compiled in one process and timed in alternating windows
(benchmarks/cpu_convolutions.py), ran 5-17 % faster with the convolutions left to XLA
(non-saturating DCGAN at B = 64 and 256, with the lens or AdvAs, WGAN-GP); BEGAN's ran the
same (docs/benchmarks.md). Matrix products and reductions stay with YNNPACK: the
semi-supervised MLPs gained nothing without it.

`train.cpu_convolutions` picks the kernels: "eigen" (the default) or "ynnpack" (XLA's own
default). Only the kernels change, not the computation: values agree to float32 rounding
(tests/test_xla_cpu.py). Other platforms, and jaxlib releases whose XLA:CPU does not know the
option, compile with no extra options.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.core.registry import ConfigError

CONVOLUTION_KERNELS = ("eigen", "ynnpack")
DEFAULT_CONVOLUTION_KERNELS = "eigen"

# The kinds of operation XLA:CPU fuses into YNNPACK calls by default (its
# xla_cpu_experimental_ynn_fusion_type), less LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION. As a
# compile option the field takes only a full list, not XLA_FLAGS' "-type" form, so the rest of
# the default is spelled out; tests/test_xla_cpu.py checks it against the installed jaxlib's.
_YNN_FUSIONS_WITHOUT_CONVOLUTION = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


def compiler_options(
  platform: str, convolutions: str, field: str = "config field train.cpu_convolutions"
) -> dict[str, Any] | None:
  """The XLA compile options for `platform` with convolution kernels `convolutions`.

  Args:
    platform: the devices' platform ("cpu", "gpu", "tpu").
    convolutions: one of `CONVOLUTION_KERNELS` (train.cpu_convolutions).
    field: what an invalid `convolutions` is reported as.

  Returns:
    Options for `jax.jit(..., compiler_options=...)`, or None (XLA's defaults).

  Raises:
    ConfigError: `convolutions` is not one of `CONVOLUTION_KERNELS`.
  """
  if convolutions not in CONVOLUTION_KERNELS:
    valid = ", ".join(map(repr, CONVOLUTION_KERNELS))
    raise ConfigError(f"invalid value {convolutions!r} for {field}; valid: {valid}")
  if platform != "cpu" or convolutions == "ynnpack" or not _option_known():
    return None
  return dict(_EIGEN)


_EIGEN = {"xla_cpu_experimental_ynn_fusion_type": _YNN_FUSIONS_WITHOUT_CONVOLUTION}


@functools.cache
def _option_known() -> bool:
  """Whether the installed jaxlib's XLA:CPU takes the option and its values (jaxlib releases
  before YNNPACK have neither; they keep their defaults)."""
  try:
    x = jax.device_put(jnp.zeros(2, jnp.float32), jax.devices("cpu")[0])
    jax.jit(jnp.negative).lower(x).compile(compiler_options=_EIGEN)
  except Exception:  # pylint: disable=broad-except  (XLA reports an unknown option as it can)
    return False
  return True
