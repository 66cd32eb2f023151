"""Keys by purpose and noise: the project's one way of deriving randomness."""

from __future__ import annotations

import math
import zlib

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np

NOISE_DISTRIBUTIONS = ("normal", "uniform", "uniform01")


def named_key(key: jax.Array, name: str) -> jax.Array:
  """A key derived from `key` and a purpose's name (a network, a phase).

  Keys derived by name do not depend on which other networks or phases exist: adding a lens
  leaves the initial weights of G and D, and the noise they are trained on, unchanged, so runs
  with and without it start from identical G and D.
  """
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def sample_noise(key: jax.Array, shape: tuple[int, ...], dist: str) -> jax.Array:
  """z ~ N(0, I) ("normal"), U[-1, 1] ("uniform", BEGAN) or U[0, 1] ("uniform01", the
  released code of Salimans et al. 2016), float32 of `shape`."""
  key = unrolled(key)
  if dist == "normal":
    return jax.random.normal(key, shape)
  if dist == "uniform01":
    return jax.random.uniform(key, shape)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


# ------------------------------------------------------------------- the unrolled Threefry hash
#
# jax.random draws with the Threefry-2x32 hash. On CPU, JAX lowers the hash's 20 rounds as a
# loop of 5 steps (for compile time); XLA:CPU then runs each step as separate passes over the
# whole array, reading and writing both 32-bit words from memory every time. On other platforms
# JAX emits the rounds unrolled, which XLA fuses into one pass. On one core of this project's
# CPU, 1.5 million normal draws (the semi-supervised D's noise per iteration) took 17.3 ms with
# the loop and 7.5 ms unrolled, and the `:mnist` iteration ran about 7 % faster
# (docs/semi_supervised.md).
#
# `unrolled(key)` hands jax.random the same key under a PRNG implementation whose bits are
# computed by the unrolled hash below: the same function of the same counters, so every draw is
# bit for bit what jax.random gives for the original key (tests/test_random.py), and runs
# resume and reproduce across the change. It follows JAX's "partitionable" Threefry
# (jax_threefry_partitionable, on by default): the hash of each element's row-major index. With
# that flag off, or for keys of another implementation, the key is returned as is.

_THREEFRY = jax.extend.random.threefry_prng_impl
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
  return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(
  k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 hash (Salmon et al. 2011; 20 rounds, as in jax.random) of the counter
  words (x1, x2) under the key (k1, k2), all uint32; the rounds written out.

  Returns:
    The two output words, each of the counters' broadcast shape.
  """
  ks = (k1, k2, k1 ^ k2 ^ _PARITY)
  x = [x1 + ks[0], x2 + ks[1]]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x[0] = x[0] + x[1]
      x[1] = x[0] ^ _rotate_left(x[1], r)
    x = [x[0] + ks[(i + 1) % 3], x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)]
  return x[0], x[1]


def _partitionable_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
  """Random bits of `shape` from key data (2,) uint32, as JAX's partitionable Threefry draws
  them: the hash of each element's 64-bit row-major index (high word, low word), the two output
  words XORed for widths up to 32 bits, concatenated for 64."""
  if math.prod(shape) >= 2**32:  # the index needs its high word: leave it to JAX
    return _THREEFRY.random_bits(key, bit_width, shape)
  # The row-major index from one iota per axis, so that a sharded draw computes its own part.
  lo = jnp.zeros(shape, np.uint32)
  for axis in range(len(shape)):
    stride = np.uint32(math.prod(shape[axis + 1 :]))
    lo = lo + jax.lax.broadcasted_iota(np.uint32, shape, axis) * stride
  bits1, bits2 = threefry2x32(key[0], key[1], jnp.zeros_like(lo), lo)
  if bit_width == 64:
    return (bits1.astype(np.uint64) << np.uint64(32)) | bits2.astype(np.uint64)
  bits = bits1 ^ bits2
  return bits if bit_width == 32 else bits.astype(f"uint{bit_width}")


UNROLLED_THREEFRY = jax.extend.random.define_prng_impl(
  key_shape=_THREEFRY.key_shape,
  seed=_THREEFRY.seed,
  split=_THREEFRY.split,
  random_bits=_partitionable_bits,
  fold_in=_THREEFRY.fold_in,
  name="threefry2x32_unrolled",
  tag="fry_unrolled",
)


def unrolled(key: jax.Array) -> jax.Array:
  """`key`, a Threefry key (raw uint32 (2,) or typed), as a key of the same stream whose draws
  compile to the unrolled hash; any other key unchanged.

  Use it where a key is drawn from, not split or folded: jax.random.normal(unrolled(key), ...)
  equals jax.random.normal(key, ...) bit for bit.
  """
  if not jax.config.jax_threefry_partitionable:
    return key
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    if str(jax.random.key_impl(key)) != "threefry2x32":
      return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED_THREEFRY)
  raw_threefry = jax.config.jax_default_prng_impl == "threefry2x32"
  if key.shape != (2,) or key.dtype != np.uint32 or not raw_threefry:
    return key
  return jax.random.wrap_key_data(key, impl=UNROLLED_THREEFRY)
