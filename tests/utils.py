"""Shared helpers for the tests."""

import functools

import jax
import numpy as np

from gan_jax import configs, train
from gan_jax import spec as spec_lib
from gan_jax.core import parallel
from gan_jax.core import step as step_lib


def smoke_config(name: str, arg: str = "smoke", **overrides):
  """configs/<name>.py with argument `arg`, then dotted-field overrides."""
  config = configs.get(name, arg)
  for field, value in overrides.items():
    if "__" in field:
      section, key = field.split("__")
      config[section][key] = value
    else:
      config[field] = value
  return config


def smoke_spec(name: str, devices: int = 1, **overrides):
  """The RunSpec of a smoke config on a mesh of `devices` devices."""
  config = smoke_config(name, **overrides)
  return spec_lib.build_spec(config, mesh=parallel.make_mesh(devices)), config


def random_batch(spec, seed: int = 0):
  """A uint8 batch {"image": (R, B, H, W, C)} for one iteration of `spec`."""
  rng = np.random.default_rng(seed)
  shape = (spec.batches_per_iteration, spec.batch_size) + spec.image_shape
  return {"image": rng.integers(0, 256, shape, dtype=np.uint8)}


def iterate(spec, state, n: int, seed: int = 0, donate: bool = False):
  """`n` training iterations of `spec` on random batches; returns (state, last metrics).

  With `donate` the project's compiled iteration runs (it consumes `state`); without, a plain
  jit of the same iteration leaves `state` usable for comparisons."""
  step = (
    train.compile_train_iteration(spec)
    if donate
    else jax.jit(functools.partial(step_lib.train_iteration, spec=spec))
  )
  metrics = None
  for i in range(n):
    state, metrics = step(state, random_batch(spec, seed + i))
  return state, metrics
