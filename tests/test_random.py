"""gan_jax/core/random.py: the unrolled Threefry hash draws what jax.random draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.core import parallel
from gan_jax.core import random as random_lib

SHAPES = [(), (1,), (7,), (100, 7), (3, 4, 5)]


@pytest.mark.parametrize(
  "key, counter, expected",
  [
    # Known-answer vectors of Threefry-2x32 with 20 rounds (Random123's kat_vectors).
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
  ],
)
def test_threefry2x32_known_answers(key, counter, expected):
  words = jax.jit(random_lib.threefry2x32)(*(jnp.uint32(v) for v in key + counter))
  assert tuple(int(w) for w in words) == expected


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("width", [8, 16, 32])
def test_bits_equal_jax_random_bits(shape, width):
  for key in (jax.random.PRNGKey(3), jax.random.key(11)):
    expected = jax.random.bits(key, shape, f"uint{width}")
    got = jax.jit(lambda k: jax.random.bits(random_lib.unrolled(k), shape, f"uint{width}"))(key)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_64_bit_draws_equal_jax_random_bits():
  with jax.enable_x64(True):
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(
      jax.random.bits(random_lib.unrolled(key), (9, 2), "uint64"),
      jax.random.bits(key, (9, 2), "uint64"),
    )


@pytest.mark.parametrize(
  "draw",
  [
    lambda k: jax.random.normal(k, (500, 30)),
    lambda k: jax.random.uniform(k, (64, 100), minval=-1.0, maxval=1.0),
    lambda k: jax.random.bernoulli(k, 0.3, (1000,)),
    lambda k: jax.random.normal(k, (8,), jnp.bfloat16),
  ],
)
def test_draws_equal_jax_random(draw):
  key = jax.random.fold_in(jax.random.PRNGKey(0), 17)
  np.testing.assert_array_equal(jax.jit(lambda k: draw(random_lib.unrolled(k)))(key), draw(key))


@pytest.mark.parametrize("dist", ["normal", "uniform", "uniform01"])
def test_sample_noise_is_jax_random(dist):
  key = jax.random.PRNGKey(1)
  expected = {
    "normal": lambda: jax.random.normal(key, (4, 100)),
    "uniform": lambda: jax.random.uniform(key, (4, 100), minval=-1.0, maxval=1.0),
    "uniform01": lambda: jax.random.uniform(key, (4, 100)),
  }[dist]()
  np.testing.assert_array_equal(random_lib.sample_noise(key, (4, 100), dist), expected)


def test_the_hash_compiles_without_a_loop():
  # What the unrolled hash is for: JAX's CPU lowering of the hash is a loop of 5 steps, each a
  # pass over the whole array; written out, XLA fuses the 20 rounds into one pass.
  key = jax.random.PRNGKey(0)
  text = jax.jit(lambda k: jax.random.normal(random_lib.unrolled(k), (1000,))).lower(key)
  assert "while" not in text.compile().as_text()


def test_other_keys_are_returned_unchanged():
  rbg = jax.random.key(0, impl="rbg")
  assert random_lib.unrolled(rbg) is rbg
  keys = jax.random.split(jax.random.PRNGKey(0), 3)  # a batch of raw keys: not one key
  assert random_lib.unrolled(keys) is keys
  key = jax.random.PRNGKey(0)
  with jax.threefry_partitionable(False):
    assert random_lib.unrolled(key) is key
  assert jax.random.key_impl(random_lib.unrolled(key)) == random_lib.UNROLLED_THREEFRY


def test_a_sharded_draw_equals_the_unsharded_one():
  mesh = parallel.make_mesh(4)
  key = jax.random.PRNGKey(2)
  draw = jax.jit(
    lambda k: jax.random.normal(random_lib.unrolled(k), (8, 6)),
    out_shardings=parallel.batch_sharding(mesh),
  )
  got = draw(key)
  assert len(got.sharding.device_set) == 4
  np.testing.assert_array_equal(got, jax.random.normal(key, (8, 6)))
