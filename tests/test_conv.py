"""The CPU-fast strided convolutions equal Flax's, in value and in derivatives of order 1 and 2."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gan_jax.models import conv


def _pairs(kernel, stride=2):
  f64 = dict(param_dtype=jnp.float64, dtype=jnp.float64)
  strides = (stride, stride)
  pairs = [
    (
      nn.Conv(5, (kernel, kernel), strides, padding="SAME", **f64),
      conv.StridedConv(5, (kernel, kernel), strides, **f64),
    )
  ]
  if stride > 1:  # G's upsampling layers
    pairs.append(
      (
        nn.ConvTranspose(5, (kernel, kernel), strides, padding="SAME", **f64),
        conv.StridedConvTranspose(5, (kernel, kernel), strides, **f64),
      )
    )
  return pairs


# (image size, kernel, stride, batch, chunk budget): DCGAN's 4x4 stride-2 layers, a 3x3 stride-2
# one (BEGAN's encoder), the 3x3 stride-1 layers of the lens and BEGAN, then the gradients on
# batch chunks: a budget of 0 elements gives one example per chunk; 2 x 8x8x(3 + 5), two
# examples of the stride-1 layer's x and output gradient, gives three chunks of two.
@pytest.mark.parametrize(
  "size,kernel,stride,batch,budget",
  [
    (8, 4, 2, 2, None),
    (7, 4, 2, 2, None),
    (14, 4, 2, 2, None),
    (8, 3, 2, 2, None),
    (8, 3, 1, 2, None),
    (7, 3, 1, 2, None),
    (8, 4, 2, 6, 0),
    (7, 3, 1, 6, 0),
    (8, 3, 1, 6, 2 * 8 * 8 * (3 + 5)),
  ],
)
def test_values_and_derivatives_match_flax(size, kernel, stride, batch, budget, monkeypatch):
  if budget is not None:
    monkeypatch.setattr(conv, "_CHUNK_ELEMENTS", budget)
  with jax.enable_x64(True):
    key_x, key_p = jax.random.split(jax.random.PRNGKey(size * 10 + kernel))
    x = jax.random.normal(key_x, (batch, size, size, 3), jnp.float64)
    for reference, fast in _pairs(kernel, stride):
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


def test_chunks_split_each_device_block_into_the_fewest_that_fit(monkeypatch):
  assert jax.device_count() == 4  # tests/conftest.py
  # DCGAN's 64->128 kernel gradient at B = 256: 16x16x64 + 8x8x128 = 24576 elements per
  # example; 64 per device, 2**19 / 24576 = 21.3, so 4 chunks of 16.
  assert conv._num_chunks(256, 16 * 16 * 64 + 8 * 8 * 128) == (4, 4)
  # A batch that does not divide across the devices is one block.
  assert conv._num_chunks(6, 2**17) == (1, 2)
  assert conv._num_chunks(6, 2**18) == (1, 3)  # 3 x 2**18 does not fit, 2 x 2**18 does
  assert conv._num_chunks(6, 2**20) == (1, 6)  # nothing fits: one example per chunk
  assert conv._num_chunks(8, 10) == (4, 1)  # small enough whole
  monkeypatch.setattr(conv, "_CHUNK_ELEMENTS", 10)
  assert conv._num_chunks(8, 10) == (4, 2)


@pytest.mark.parametrize("size,kernel", [(8, 3), (7, 3), (8, 4), (6, 2)])
def test_stride1_kernel_gradient_equals_the_transposed_convolution(size, kernel):
  """The stride-1 kernel gradient, computed with the batch moved innermost by a product with
  the identity, equals the transpose of the plain convolution (even kernels pad unevenly)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (5, size, size, 3))
  g = jax.random.normal(jax.random.PRNGKey(1), (5, size, size, 4))
  k_shape = (kernel, kernel, 3, 4)
  expected = jax.linear_transpose(
    lambda k: conv._plain_conv(x, k, (1, 1)), jax.ShapeDtypeStruct(k_shape, jnp.float32)
  )(g)[0]
  got = jax.jit(conv._stride1_kernel_grad, static_argnums=2)(x, g, k_shape)
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
  np.testing.assert_array_equal(conv._batch_minor(x), jnp.transpose(x, (1, 2, 3, 0)))


def test_chunked_gradients_under_a_sharded_batch_equal_whole_ones(monkeypatch):
  """Kernel and input gradients on chunks of each device's block, the batch sharded over the
  4 devices, equal the unchunked gradients of one device (float32 rounding apart)."""
  from gan_jax.core import parallel

  x = jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8, 3))
  k = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 5))
  g = jax.random.normal(jax.random.PRNGKey(2), (16, 8, 8, 5))

  def grads(x, k, g):
    return conv.conv_kernel_grad(x, g, k.shape, (1, 1)), conv.conv_input_grad(g, k, x.shape, (1, 1))

  whole = jax.jit(grads)(x, k, g)
  monkeypatch.setattr(conv, "_CHUNK_ELEMENTS", 2 * 8 * 8 * (3 + 5))  # 2 chunks per device
  assert conv._num_chunks(16, 8 * 8 * (3 + 5)) == (4, 2)
  mesh = parallel.make_mesh(4)
  batch, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)
  fn = jax.jit(grads, in_shardings=(batch, replicated, batch))
  chunked = fn(x, k, g)
  chex.assert_trees_all_close(chunked, whole, rtol=1e-5, atol=1e-5)
  # The chunks are cut inside each device's block: no collective moves examples.
  hlo = fn.lower(x, k, g).compile().as_text()
  assert not [op for op in ("all-to-all", "all-gather", "collective-permute") if op in hlo]
  assert chunked[1].sharding.is_equivalent_to(batch, 4)
