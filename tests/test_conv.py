"""The CPU-fast strided convolutions equal Flax's, in value and in derivatives of order 1 and 2."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gan_jax.models import conv


def _pairs(kernel):
  f64 = dict(param_dtype=jnp.float64, dtype=jnp.float64)
  return [
    (
      nn.Conv(5, (kernel, kernel), (2, 2), padding="SAME", **f64),
      conv.StridedConv(5, (kernel, kernel), (2, 2), **f64),
    ),
    (
      nn.ConvTranspose(5, (kernel, kernel), (2, 2), padding="SAME", **f64),
      conv.StridedConvTranspose(5, (kernel, kernel), (2, 2), **f64),
    ),
  ]


@pytest.mark.parametrize("size,kernel", [(8, 4), (7, 4), (14, 4), (8, 3)])
def test_values_and_derivatives_match_flax(size, kernel):
  with jax.enable_x64(True):
    key_x, key_p = jax.random.split(jax.random.PRNGKey(size * 10 + kernel))
    x = jax.random.normal(key_x, (2, size, size, 3), jnp.float64)
    for reference, fast in _pairs(kernel):
      params = reference.init(key_p, x)
      # Same parameter names, shapes and initial values: checkpoints carry over.
      chex.assert_trees_all_close(fast.init(key_p, x), params)
      chex.assert_trees_all_close(fast.apply(params, x), reference.apply(params, x), atol=1e-12)

      def loss(module, p, v):
        return jnp.sum(jnp.sin(module.apply(p, v)))

      for wrt in (0, 1):  # first derivatives
        chex.assert_trees_all_close(
          jax.grad(loss, 1 + wrt)(fast, params, x),
          jax.grad(loss, 1 + wrt)(reference, params, x),
          atol=1e-12,
        )

      # Second derivatives as in the gradient penalty (∇_θ ‖∇_x D‖²) and in AdvAs
      # (∇_x ‖∇_θ D‖², the generator's view of a penalty on D's parameter gradient).
      def penalty_x(module, p, v):
        return jnp.sum(jax.grad(loss, 2)(module, p, v) ** 2)

      def penalty_p(module, p, v):
        return sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss, 1)(module, p, v)))

      chex.assert_trees_all_close(
        jax.grad(penalty_x, 1)(fast, params, x),
        jax.grad(penalty_x, 1)(reference, params, x),
        atol=1e-10,
      )
      chex.assert_trees_all_close(
        jax.grad(penalty_p, 2)(fast, params, x),
        jax.grad(penalty_p, 2)(reference, params, x),
        atol=1e-10,
      )


def test_no_dilated_reversed_kernel_in_cpu_gradient_penalty():
  """The slow XLA:CPU form (kernel dilated and reversed) is absent from the penalty's HLO."""
  module = conv.StridedConv(4, (4, 4), (2, 2))
  x = jnp.ones((2, 8, 8, 3))
  params = module.init(jax.random.PRNGKey(0), x)

  def penalty(p):
    return jnp.sum(jax.grad(lambda v: jnp.sum(jnp.sin(module.apply(p, v))))(x) ** 2)

  hlo = jax.jit(jax.grad(penalty)).lower(params).compile().as_text()
  assert "convolution" in hlo
  slow = [
    line
    for line in hlo.splitlines()
    if "convolution(" in line and "rhs_dilate" in line and "rhs_reversal" in line
  ]
  assert not slow, slow
  # The plain Flax layer does produce it (what the custom derivatives avoid).
  reference = nn.Conv(4, (4, 4), (2, 2), padding="SAME")

  def reference_penalty(p):
    return jnp.sum(jax.grad(lambda v: jnp.sum(jnp.sin(reference.apply(p, v))))(x) ** 2)

  reference_hlo = jax.jit(jax.grad(reference_penalty)).lower(params).compile().as_text()
  assert any(
    "rhs_dilate" in line and "rhs_reversal" in line
    for line in reference_hlo.splitlines()
    if "convolution(" in line
  )
  np.testing.assert_allclose(
    jax.grad(penalty)(params)["params"]["kernel"],
    jax.grad(reference_penalty)(params)["params"]["kernel"],
    rtol=2e-4,
    atol=1e-5,
  )
