"""Keys by purpose and noise: the project's one way of deriving randomness."""

from __future__ import annotations

import zlib

import jax

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
  if dist == "normal":
    return jax.random.normal(key, shape)
  if dist == "uniform01":
    return jax.random.uniform(key, shape)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
