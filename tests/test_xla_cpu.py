"""train.cpu_convolutions (gan_jax/core/xla_cpu.py): which kernels run the convolutions on CPU."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import train
from gan_jax.core import parallel, xla_cpu
from gan_jax.core.registry import ConfigError
from gan_jax.metrics import features
from tests.utils import iterate, random_batch, smoke_spec

EIGEN = xla_cpu.compiler_options("cpu", "eigen")


def _ynn_fused(compiled_text: str) -> set[str]:
  """Which of convolution, dot and reduce run inside YNNPACK fusions of a compiled module."""
  # Computations are blocks "%name (params) -> shape {" ... "}"; a YNNPACK fusion is a
  # fusion instruction "calls=%name" whose backend config has kind "__ynn_fusion".
  blocks = dict(re.findall(r"^(%[\w.\-]+) \([^\n]*\{\n(.*?)\n\}", compiled_text, re.M | re.S))
  called = re.findall(r'calls=(%[\w.\-]+)[^\n]*"kind":"__ynn_fusion"', compiled_text)
  body = "\n".join(blocks.get(name, "") for name in called)
  return {op for op in ("convolution", "dot", "reduce") if f" {op}(" in body}


# One operation of each kind XLA:CPU can hand to YNNPACK, large enough that it does.
_X = jnp.ones((32, 32, 32, 32))
_K = jnp.ones((3, 3, 32, 32))
_A = jnp.ones((512, 512))
PROBES = {
  "convolution": (
    lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    ),
    (_X, _K),
  ),
  "dot": (lambda a, b: a @ b, (_A, _A)),
  "reduce": (lambda a, b: jnp.sum(jnp.exp(a) * b, axis=0), (_A, _A)),
}


@pytest.mark.parametrize("op", sorted(PROBES))
def test_eigen_takes_only_the_convolutions_from_ynnpack(op):
  """Against the installed jaxlib's defaults: with "eigen" only the convolutions leave
  YNNPACK; whatever else XLA fuses into YNNPACK by default stays there."""
  fn, args = PROBES[op]
  lowered = jax.jit(fn).lower(*args)
  default = _ynn_fused(lowered.compile().as_text())
  eigen = _ynn_fused(lowered.compile(compiler_options=EIGEN).as_text())
  assert op in default, f"XLA:CPU no longer hands a {op} to YNNPACK: revisit xla_cpu.py"
  assert eigen == (default - {"convolution"}), op


def test_options_by_platform_and_choice():
  assert xla_cpu.compiler_options("cpu", "ynnpack") is None
  assert xla_cpu.compiler_options("gpu", "eigen") is None
  assert xla_cpu.compiler_options("tpu", "eigen") is None
  with pytest.raises(ConfigError, match="train.cpu_convolutions.*'eigen', 'ynnpack'"):
    xla_cpu.compiler_options("cpu", "onednn")


def test_a_jaxlib_without_the_option_keeps_its_defaults(monkeypatch):
  """A value XLA:CPU does not know (as in jaxlib releases before YNNPACK) means no options, not
  a failed compilation."""
  monkeypatch.setitem(xla_cpu._EIGEN, "xla_cpu_experimental_ynn_fusion_type", "NO_SUCH_TYPE")
  xla_cpu._option_known.cache_clear()
  try:
    assert xla_cpu.compiler_options("cpu", "eigen") is None
  finally:
    monkeypatch.undo()
    xla_cpu._option_known.cache_clear()
  assert xla_cpu.compiler_options("cpu", "eigen") == EIGEN


def test_iterations_agree_with_either_kernels():
  """The same iterations with the convolutions on Eigen and on YNNPACK: float32 rounding apart.
  The lens config: 3x3 stride-1 and 4x4 stride-2 convolutions, with their derivatives."""
  states = {}
  for kernels in ("eigen", "ynnpack"):
    spec, _ = smoke_spec("dcgan_lens", train__cpu_convolutions=kernels)
    assert spec.cpu_convolutions == kernels
    state = train.init_state(spec, 0)
    step = train.compile_train_iteration(spec)
    text = step.lower(state, random_batch(spec)).compile().as_text()
    # The compiled iterations differ in their kernels only.
    assert ("convolution" in _ynn_fused(text)) == (kernels == "ynnpack"), kernels
    states[kernels], _ = iterate(spec, state, 3, donate=True)
  leaves = jax.tree_util.tree_leaves_with_path(states["eigen"].params)
  reference = dict(jax.tree_util.tree_leaves_with_path(states["ynnpack"].params))
  assert leaves
  for path, leaf in leaves:
    np.testing.assert_allclose(
      leaf, reference[path], rtol=2e-4, atol=2e-6, err_msg=jax.tree_util.keystr(path)
    )


def test_feature_extractors_compile_their_convolutions_alike():
  """A feature extractor's network: Eigen by default, YNNPACK on request, the same features."""
  kernel = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 3, 32)) * 0.1

  def net(params, images):
    x = images.astype(jnp.float32) / 255.0
    return {
      "out": jax.lax.conv_general_dilated(
        x, params, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
    }

  images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
  out = {}
  for kernels in ("eigen", "ynnpack"):
    extractor = features.FeatureExtractor(
      "toy",
      "toy",
      net,
      kernel,
      {"out": "features"},
      batch_size=16,
      mesh=parallel.make_mesh(1),
      cpu_convolutions=kernels,
    )
    text = extractor._fn.lower(extractor._params, images).compile().as_text()
    assert ("convolution" in _ynn_fused(text)) == (kernels == "ynnpack"), kernels
    out[kernels] = extractor(images)["features"]
  np.testing.assert_allclose(out["eigen"], out["ynnpack"], rtol=1e-5, atol=1e-5)
  default = features.FeatureExtractor(
    "toy", "toy", net, kernel, {"out": "features"}, batch_size=16, mesh=parallel.make_mesh(1)
  )
  assert "convolution" not in _ynn_fused(
    default._fn.lower(default._params, images).compile().as_text()
  )
