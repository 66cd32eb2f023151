"""Strided convolutions whose derivatives of every order stay fast on XLA:CPU.

The DCGAN networks use 4x4 stride-2 convolutions in D and stride-2 transposed convolutions in
G. Plain autodiff of these produces, in two places, a convolution with a kernel that is both
dilated and reversed (`rhs_dilate=2 rhs_reversal=1` in HLO): the kernel gradient of G's
transposed convolutions, and the second derivative of D's convolutions inside the WGAN-GP
penalty and AdvAs. XLA:CPU has no fast kernel for that form and falls back to a naive loop,
which took about 70 % of a DCGAN iteration and most of a WGAN-GP one on a 2-core CPU
(docs/benchmarks.md).

A strided convolution y = conv(x, k) has two linear companions, its input gradient
`conv_input_grad(g, k) = (∂y/∂x)ᵀ g` and its kernel gradient `conv_kernel_grad(x, g) =
(∂y/∂k)ᵀ g`. The three are bilinear and each one's vector-Jacobian product is made of the
others:

    conv(x, k):              x̄ = conv_input_grad(ȳ, k),   k̄ = conv_kernel_grad(x, ȳ)
    conv_input_grad(g, k):   ḡ = conv(c, k),               k̄ = conv_kernel_grad(c, g)
    conv_kernel_grad(x, g):  x̄ = conv_input_grad(g, c),    ḡ = conv(x, c)

(c the incoming cotangent), so with `jax.custom_vjp` every derivative of any order is one of
three operations that XLA:CPU runs with its library kernels. G's transposed convolution is the
input gradient of a strided convolution with the spatially flipped, in/out-swapped kernel, so
it joins the same closed set. Values and parameters are those of `nn.Conv` / `nn.ConvTranspose`
(padding "SAME"); the custom path is taken on CPU only (`lax.platform_dependent`), elsewhere
the plain convolutions run.

The same three operations serve the stride-1 3x3 convolutions of the Tempered GAN lens and of
BEGAN. Their plain derivatives have no slow dilated form, but their kernel gradient, like every
input and kernel gradient here, slows down several-fold once its operands outgrow a core's L2
cache, which a lens activation (32 channels at 32x32) does at B = 64 already (next paragraph).

Batch chunks. XLA:CPU's convolution kernels keep their speed only while an operation's operands
fit in a core's L2 cache. On this project's 2-core CPU (2 MiB of L2 per core) the kernel gradient
of DCGAN's 64->128 layer took 16.5 ms at B = 64, 78.5 ms at B = 256 and 427 ms at B = 1024, and
9.2, 29.5 and 177 ms computed on chunks and summed; the lens's 32->32 3x3 kernel gradient at
B = 64 took 47.7 ms whole and 20.0 ms in 8 chunks (`benchmarks/conv_chunks.py`,
docs/benchmarks.md). The two gradients are therefore computed on batch chunks of at most
`_CHUNK_ELEMENTS` elements of their two batched operands together (2 MiB of float32), the
kernel gradient summed over the chunks and the input gradient stacked; the forward convolution,
which gained nothing measurable, runs whole. Under a data-parallel mesh the batch is split into
contiguous blocks per device first and each block into chunks, so a chunk never needs another
device's examples. Chunking changes only the order of a sum (the kernel gradient's), and is not
done at all on other platforms. (These timings are YNNPACK's, XLA:CPU's default convolution
kernels; the training iteration now runs its convolutions on XLA's Eigen kernels,
train.cpu_convolutions in `gan_jax.core.xla_cpu`, with which this budget was measured again
and kept, docs/benchmarks.md.) A stride-1 kernel gradient's chunk is put into the layout its
convolution needs (batch innermost) by a product with the identity rather than by XLA's
transposes, which took about a quarter of the lens iteration's operation time.

Precision: the layers cast x, the kernel and the bias to `dtype` (bfloat16 with
train.compute_dtype = "bfloat16"; the parameters stay `param_dtype`, float32), so the three
operations, and every derivative built from them, see operands of one dtype, and a cotangent
has the dtype of its primal. The transpose of the cast hands the kernel's gradient back to the
float32 parameter as float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

_DIMS = ("NHWC", "HWIO", "NHWC")
Shape = tuple[int, ...]


def _same_padding(in_size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow/Flax "SAME" padding of one spatial dimension."""
  out = -(-in_size // stride)
  total = max((out - 1) * stride + kernel - in_size, 0)
  return total // 2, total - total // 2


def _plain_conv(x: jax.Array, k: jax.Array, strides: Sequence[int]) -> jax.Array:
  padding = [_same_padding(n, kk, s) for n, kk, s in zip(x.shape[1:3], k.shape[:2], strides)]
  return jax.lax.conv_general_dilated(x, k, tuple(strides), padding, dimension_numbers=_DIMS)


# The most elements of an input or kernel gradient's two batched operands (x or its gradient,
# and the output gradient) computed in one piece: 2 MiB of float32, one core's L2 cache here.
_CHUNK_ELEMENTS = 2**19


def _num_chunks(batch: int, per_example: int) -> tuple[int, int]:
  """(blocks, chunks per block) for a batch of `batch` examples of `per_example` elements.

  Blocks are the devices' contiguous shares of a data-parallel batch (one block when the batch
  does not divide evenly across the devices); each block is split into the fewest equal chunks
  of at most `_CHUNK_ELEMENTS` elements, or into single examples if none is that small.
  """
  blocks = jax.device_count()
  if batch % blocks:
    blocks = 1
  local = batch // blocks
  divisors = [m for m in range(1, local + 1) if local % m == 0]
  fits = (m for m in divisors if local // m * per_example <= _CHUNK_ELEMENTS)
  return blocks, next(fits, local)


def _over_chunks(
  fn: Callable[..., jax.Array], batched: Sequence[jax.Array], *, per_example: int, summed: bool
) -> jax.Array:
  """fn applied to batch chunks of `batched` (arrays with one leading batch axis) whose
  operands and result have `per_example` elements per example: the sum of the results if
  `summed`, else the results stacked back into batch order."""
  batch = batched[0].shape[0]
  blocks, chunks = _num_chunks(batch, per_example)
  if chunks == 1:
    return fn(*batched)
  split = [a.reshape(blocks, chunks, batch // (blocks * chunks), *a.shape[1:]) for a in batched]
  outs = [fn(*(a[:, j].reshape(-1, *a.shape[3:]) for a in split)) for j in range(chunks)]
  if summed:
    return functools.reduce(jnp.add, outs)
  stacked = jnp.stack([o.reshape(blocks, -1, *o.shape[1:]) for o in outs], axis=1)
  return stacked.reshape(batch, *stacked.shape[3:])


def _transpose(
  linear_fn: Callable[[jax.Array], jax.Array], shape: Shape, ct: jax.Array
) -> jax.Array:
  """The transpose of the linear map `linear_fn` (from arrays of `shape`) applied to `ct`.

  The map's input has ct's dtype: the operands of each convolution share one dtype (the
  layers cast them to `dtype`), and a cotangent has its primal's.
  """
  return jax.linear_transpose(linear_fn, jax.ShapeDtypeStruct(shape, ct.dtype))(ct)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv(x: jax.Array, k: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """Strided "SAME" convolution (B, H, W, I) x (kh, kw, I, O) -> (B, H/s, W/s, O)."""
  return _plain_conv(x, k, strides)


def _conv_fwd(x, k, strides):
  return conv(x, k, strides), (x, k)


def _conv_bwd(strides, res, ct):
  x, k = res
  return (conv_input_grad(ct, k, x.shape, strides), conv_kernel_grad(x, ct, k.shape, strides))


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_input_grad(
  g: jax.Array, k: jax.Array, x_shape: Shape, strides: tuple[int, int]
) -> jax.Array:
  """(∂ conv(x, k) / ∂x)ᵀ g: (B, H/s, W/s, O) -> x_shape (B, H, W, I), by batch chunks."""

  def chunk(g_c):
    return _transpose(lambda x: _plain_conv(x, k, strides), (g_c.shape[0], *x_shape[1:]), g_c)

  per_example = math.prod(g.shape[1:]) + math.prod(x_shape[1:])
  return _over_chunks(chunk, [g], per_example=per_example, summed=False)


def _input_grad_fwd(g, k, x_shape, strides):
  return conv_input_grad(g, k, x_shape, strides), (g, k)


def _input_grad_bwd(x_shape, strides, res, ct):
  g, k = res
  return conv(ct, k, strides), conv_kernel_grad(ct, g, k.shape, strides)


conv_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


def _batch_minor(x: jax.Array) -> jax.Array:
  """(n, H, W, C) -> (H, W, C, n), as the product with the n x n identity.

  Exact for finite values (each output is one input times 1 plus zeros). The kernel gradient's
  left operand needs the batch innermost; XLA:CPU's own transposes into that layout took about a
  quarter of the lens iteration's operation time, its matrix product moves the data faster
  (docs/benchmarks.md).
  """
  eye = jnp.eye(x.shape[0], dtype=x.dtype)
  return jax.lax.dot_general(x, eye, (((0,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)


def _stride1_kernel_grad(x: jax.Array, g: jax.Array, k_shape: Shape) -> jax.Array:
  """The kernel gradient of a stride-1 "SAME" convolution, x (n, H, W, I), g (n, H, W, O) ->
  (kh, kw, I, O): the convolution of x over the batch and pixels with g as the kernel."""
  padding = [_same_padding(n, kk, 1) for n, kk in zip(x.shape[1:3], k_shape[:2])]
  out = jax.lax.conv_general_dilated(
    _batch_minor(x), g, (1, 1), padding, dimension_numbers=("HWNC", "IHWO", "NHWC")
  )
  return jnp.transpose(out, (1, 2, 0, 3))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_kernel_grad(
  x: jax.Array, g: jax.Array, k_shape: Shape, strides: tuple[int, int]
) -> jax.Array:
  """(∂ conv(x, k) / ∂k)ᵀ g: x (B, H, W, I), g (B, H/s, W/s, O) -> k_shape (kh, kw, I, O),
  summed over batch chunks."""

  def chunk(x_c, g_c):
    if tuple(strides) == (1, 1):
      # The lens's and BEGAN's 3x3 layers; the strided layers gained nothing measurable.
      return _stride1_kernel_grad(x_c, g_c, k_shape)
    return _transpose(lambda k: _plain_conv(x_c, k, strides), k_shape, g_c)

  per_example = math.prod(x.shape[1:]) + math.prod(g.shape[1:])
  return _over_chunks(chunk, [x, g], per_example=per_example, summed=True)


def _kernel_grad_fwd(x, g, k_shape, strides):
  return conv_kernel_grad(x, g, k_shape, strides), (x, g)


def _kernel_grad_bwd(k_shape, strides, res, ct):
  x, g = res
  return conv_input_grad(g, ct, x.shape, strides), conv(x, ct, strides)


conv_kernel_grad.defvjp(_kernel_grad_fwd, _kernel_grad_bwd)


def _on_cpu(
  fast: Callable[..., jax.Array], plain: Callable[..., jax.Array], *args: jax.Array
) -> jax.Array:
  return jax.lax.platform_dependent(*args, cpu=fast, default=plain)


def strided_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """`nn.Conv(padding="SAME")`'s convolution; closed-form derivatives on CPU."""
  return _on_cpu(
    lambda a, b: conv(a, b, strides), lambda a, b: _plain_conv(a, b, strides), x, kernel
  )


def strided_conv_transpose(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
  """`nn.ConvTranspose(padding="SAME", transpose_kernel=False)`'s convolution.

  Args:
    x: (B, H, W, I).
    kernel: (kh, kw, I, O), Flax's ConvTranspose layout.
    strides: (sh, sw).

  Returns:
    (B, H·sh, W·sw, O).
  """
  out_shape = (x.shape[0], x.shape[1] * strides[0], x.shape[2] * strides[1], kernel.shape[3])

  def fast(a, b):
    # The transposed convolution is the input gradient of the strided convolution whose
    # kernel is this one flipped in space with input and output channels swapped.
    return conv_input_grad(a, jnp.flip(b, (0, 1)).swapaxes(2, 3), out_shape, strides)

  def plain(a, b):
    return jax.lax.conv_transpose(a, b, strides, "SAME", dimension_numbers=_DIMS)

  return _on_cpu(fast, plain, x, kernel)


class _Strided(nn.Module):
  """Shared fields of the two layers: parameters `kernel` (kh, kw, I, O) and `bias` (O,), as in
  `nn.Conv` and `nn.ConvTranspose`, so checkpoints and initial weights are the same."""

  features: int
  kernel_size: tuple[int, int] = (4, 4)
  strides: tuple[int, int] = (2, 2)
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  # The computation's dtype (None: x's and the parameters' promoted); the parameters are
  # stored in param_dtype.
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  def _apply(self, op, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), self.param_dtype
    )
    bias = (
      self.param("bias", self.bias_init, (self.features,), self.param_dtype)
      if self.use_bias
      else None
    )
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = op(x, kernel, tuple(self.strides))
    return y + bias if bias is not None else y


class StridedConv(_Strided):
  """`nn.Conv(features, kernel_size, strides, padding="SAME")` with CPU-fast derivatives."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, I) to (B, H/s, W/s, features)."""
    return self._apply(strided_conv, x)


class StridedConvTranspose(_Strided):
  """`nn.ConvTranspose(features, kernel_size, strides, padding="SAME")` with CPU-fast
  derivatives (`kernel_size` must be at least the stride, as in every DCGAN layer)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, I) to (B, H·s, W·s, features)."""
    return self._apply(strided_conv_transpose, x)
