"""A history of generated images for the discriminators (Shrivastava et al. 2017, Sec. 2.3),
as CycleGAN uses it (Zhu et al. 2017, Sec. 4; the reference implementation's
util/image_pool.py, junyanz/pytorch-CycleGAN-and-pix2pix).

D is updated on a mix of the generator's current and earlier fakes, which reduces model
oscillation. The pool holds up to P images. For each image of a new batch, in batch order:

  while fewer than P are stored: store it and return it;
  once full: with probability 1/2 return a uniformly chosen stored image and store the new
             one in its place; otherwise return the new image and leave the pool unchanged.

Here the pool is pure JAX state (`TrainState.aux`, checkpointed with the rest), updated by a
controller after the generators' phase from the fakes that phase exports; the images returned
by the last query are kept in the state too, for the discriminators' phase. Randomness comes
only from the controller's key (derived from fold_in(rng, step)), so a resumed run draws the
same choices as an uninterrupted one, and the pool is a replicated global array, the same on
any number of devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from gan_jax.core.phases import Controller
from gan_jax.core.random import named_key

Metrics = dict[str, jax.Array]
PyTree = dict[str, jax.Array]


def pool_init(pool_size: int, image_shape: Sequence[int], batch_size: int) -> PyTree:
  """An empty pool.

  Args:
    pool_size: P, the images stored (50 in CycleGAN); >= 1.
    image_shape: (H, W, C).
    batch_size: B, the images per query.

  Returns:
    {"images": (P, H, W, C) float32 zeros, "count": int32 0 (images stored so far, up to P),
     "query": (B, H, W, C) float32, the images returned by the last query}.
  """
  if pool_size < 1:
    raise ValueError(f"pool_size={pool_size} must be >= 1")
  shape = tuple(image_shape)
  return {
    "images": jnp.zeros((pool_size,) + shape, jnp.float32),
    "count": jnp.zeros((), jnp.int32),
    "query": jnp.zeros((batch_size,) + shape, jnp.float32),
  }


def image_draws(key: jax.Array, index: int | jax.Array, pool_size: int):
  """The draws for the `index`-th image of a query: (u ~ U[0, 1), slot ~ U{0..P-1}).

  Both come from fold_in(key, index), so each image's choice is independent of the batch size.
  """
  u_key, slot_key = jax.random.split(jax.random.fold_in(key, index))
  return jax.random.uniform(u_key, ()), jax.random.randint(slot_key, (), 0, pool_size)


def pool_query(state: PyTree, images: jax.Array, key: jax.Array) -> tuple[PyTree, Metrics]:
  """Inserts a batch into the pool and returns the images D should see (see the module
  docstring for the rule), one image at a time in batch order.

  Args:
    state: the pool (`pool_init`).
    images: the new fakes (B, H, W, C).
    key: the query's PRNG key.

  Returns:
    (new state, whose "query" holds the returned images (B, H, W, C), metrics: "stored" (the
    images in the pool) and "from_pool" (the fraction of returned images taken from it)).
  """
  pool_size = state["images"].shape[0]
  images = images.astype(jnp.float32)

  def insert(carry, inputs):
    pool, count = carry
    index, image = inputs
    u, slot = image_draws(key, index, pool_size)
    full = count >= pool_size
    swap = full & (u > 0.5)
    returned = jnp.where(swap, pool[slot], image)
    # Not full: append at `count`; full: replace `slot` when swapping, else write nothing.
    target = jnp.where(full, slot, count)
    written = jnp.where(~full | swap, image, pool[target])
    pool = pool.at[target].set(written)
    return (pool, count + (~full).astype(count.dtype)), (returned, swap)

  indices = jnp.arange(images.shape[0])
  (pool, count), (returned, swapped) = jax.lax.scan(
    insert, (state["images"], state["count"]), (indices, images)
  )
  new = {"images": pool, "count": count, "query": returned}
  return new, {
    "stored": count.astype(jnp.float32),
    "from_pool": jnp.mean(swapped.astype(jnp.float32)),
  }


def pool_controller(
  name: str,
  pool_size: int,
  image_shape: Sequence[int],
  batch_size: int,
  sources: dict[str, str],
  after: str,
) -> Controller:
  """A controller keeping one pool per entry of `sources`.

  Args:
    name: the controller's name (its state is `TrainState.aux[name]`).
    pool_size: P per pool.
    image_shape: (H, W, C).
    batch_size: B.
    sources: pool name -> the exported phase output it stores ("<phase>/<quantity>"), e.g.
      {"fake_x": "g/fake_x", "fake_y": "g/fake_y"}.
    after: the phase after which it runs (the one exporting the fakes).

  Returns:
    The Controller; its state is {pool name: pool state}, each pool queried with the key
    named_key(controller key, pool name).
  """

  def init():
    return {pool: pool_init(pool_size, image_shape, batch_size) for pool in sources}

  def update(state, *, outputs, key):
    new, metrics = {}, {}
    for pool, output in sources.items():
      new[pool], pool_metrics = pool_query(state[pool], outputs[output], named_key(key, pool))
      metrics.update({f"{pool}/{k}": v for k, v in pool_metrics.items()})
    return new, metrics

  return Controller(name, init, update, after=after)
