"""The generic training iteration: correctness against a hand-written iteration, compile-once,
data parallelism, n_critic, constraints, EMA and pluggable terms."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import core as game_lib
from gan_jax import spec as spec_lib
from gan_jax import train
from gan_jax.core import step as step_lib
from gan_jax.core.random import named_key
from gan_jax.core.registry import ConfigError
from tests.utils import iterate, random_batch, smoke_spec


def test_matches_hand_written_non_saturating_iteration():
  """One iteration of the generic step equals a direct implementation of DCGAN training."""
  spec, config = smoke_spec("dcgan")
  state = train.init_state(spec, 0)
  batch = random_batch(spec)
  G = spec.networks["generator"].module
  D = spec.networks["discriminator"].module
  adam = optax.adam(config.optim.discriminator.learning_rate, b1=0.5)
  x = jnp.asarray(batch["image"][0], jnp.float32) / 127.5 - 1

  @jax.jit
  def reference(state):
    return _hand_written_iteration(spec, state, x, G, D, adam)

  phi, theta, g_stats, d_stats = reference(state)
  new_state, metrics = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))(state, batch)
  chex.assert_trees_all_close(new_state.params["discriminator"], phi, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new_state.params["generator"], theta, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new_state.model_state["generator"], g_stats, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(new_state.model_state["discriminator"], d_stats, rtol=1e-5, atol=1e-6)
  assert int(new_state.step) == 1
  assert set(metrics) >= {
    "d/loss",
    "g/loss",
    "d/grad_norm",
    "g/grad_norm",
    "d/param_norm",
    "g/param_norm",
    "d/adv/p_real",
  }


def _hand_written_iteration(spec, state, x, G, D, adam):
  # Key derivation documented in gan_jax.step: fold_in(rng, step), a key per phase by name,
  # one per repeat by index, then (context key, term keys).
  rng = jax.random.fold_in(state.rng, state.step)
  k_d, k_g = named_key(rng, "d"), named_key(rng, "g")
  z_key = lambda k: jax.random.split(jax.random.fold_in(k, 0))[0]
  z_d = jax.random.normal(z_key(k_d), (spec.batch_size, spec.game.z_dim))
  z_g = jax.random.normal(z_key(k_g), (spec.batch_size, spec.game.z_dim))
  theta, phi = state.params["generator"], state.params["discriminator"]
  g_stats, d_stats = state.model_state["generator"], state.model_state["discriminator"]

  def d_loss(phi):
    fake, g_new = G.apply({"params": theta, **g_stats}, z_d, train=True, mutable=["batch_stats"])
    d_real, d_new = D.apply({"params": phi, **d_stats}, x, train=True, mutable=["batch_stats"])
    d_fake, d_new = D.apply({"params": phi, **d_new}, fake, train=True, mutable=["batch_stats"])
    loss = jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))
    return loss, (g_new, d_new)

  grads, (g_stats, d_stats) = jax.grad(d_loss, has_aux=True)(phi)
  updates, _ = adam.update(grads, adam.init(phi), phi)
  phi = optax.apply_updates(phi, updates)

  def g_loss(theta):
    fake, g_new = G.apply({"params": theta, **g_stats}, z_g, train=True, mutable=["batch_stats"])
    d_fake, d_new = D.apply({"params": phi, **d_stats}, fake, train=True, mutable=["batch_stats"])
    return jnp.mean(jax.nn.softplus(-d_fake)), (g_new, d_new)

  grads, (g_stats, d_stats) = jax.grad(g_loss, has_aux=True)(theta)
  updates, _ = adam.update(grads, adam.init(theta), theta)
  theta = optax.apply_updates(theta, updates)
  return phi, theta, g_stats, d_stats


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_compiles_once(name):
  spec, _ = smoke_spec(name)
  chex.clear_trace_counter()
  traced = chex.assert_max_traces(step_lib.train_iteration, n=1)
  step = jax.jit(functools.partial(traced, spec=spec), donate_argnums=(0,))
  state = train.init_state(spec, 0)
  for i in range(3):
    state, _ = step(state, random_batch(spec, i))
  assert step._cache_size() == 1  # pylint: disable=protected-access


def test_state_buffers_are_donated():
  spec, _ = smoke_spec("dcgan")
  state = train.init_state(spec, 0)
  step = train.compile_train_iteration(spec)
  old_leaf = state.params["generator"]["project"]["kernel"]
  state, _ = step(state, random_batch(spec))
  assert old_leaf.is_deleted()


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_data_parallel_equals_single_device(name):
  """4 devices and 1 device at the same global batch give the same parameters."""
  assert jax.device_count() == 4
  results = []
  for devices in (1, 4):
    spec, _ = smoke_spec(name, devices=devices)
    state, metrics = iterate(spec, train.init_state(spec, 0), 3, donate=True)
    if devices == 4:
      sharding = state.params["generator"]["project"]["kernel"].sharding
      assert len(sharding.device_set) == 4
    results.append((jax.device_get(state), jax.device_get(metrics)))
  (s1, m1), (s4, m4) = results
  chex.assert_trees_all_close(s4.params, s1.params, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(s4.model_state, s1.model_state, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(m4, m1, rtol=1e-4, atol=1e-5)


def test_n_critic_updates():
  spec, _ = smoke_spec("wgan_gp")
  assert spec.batches_per_iteration == 5
  state, _ = iterate(spec, train.init_state(spec, 0), 2, donate=True)
  assert int(state.opt_state["discriminator"][0].count) == 10  # Adam's step count
  assert int(state.opt_state["generator"][0].count) == 2


def test_weight_clipping():
  spec, _ = smoke_spec("wgan")
  state, metrics = iterate(spec, train.init_state(spec, 0), 2, donate=True)
  leaves = jax.tree.leaves(state.params["discriminator"])
  assert max(float(jnp.max(jnp.abs(p))) for p in leaves) <= 0.01 + 1e-7
  assert "d/adv/wasserstein" in metrics


def test_each_critic_step_sees_its_own_batch():
  """Changing only the first of the n_critic real batches changes the result."""
  spec, _ = smoke_spec("wgan_gp")
  batch = random_batch(spec)
  other = {"image": batch["image"].copy()}
  other["image"][0] = 255 - other["image"][0]
  step = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))
  state = train.init_state(spec, 0)
  a, _ = step(state, batch)
  b, _ = step(state, other)
  diff = jax.tree.map(lambda u, v: float(jnp.max(jnp.abs(u - v))), a.params, b.params)
  assert max(jax.tree.leaves(diff)) > 0


def test_ema_of_generator():
  spec, _ = smoke_spec("dcgan", train__ema_decay=0.9)
  state = train.init_state(spec, 0)
  chex.assert_trees_all_equal(state.ema["generator"], state.params["generator"])
  new, _ = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))(
    state, random_batch(spec)
  )
  expected = jax.tree.map(
    lambda e, p: 0.9 * e + 0.1 * p, state.ema["generator"], new.params["generator"]
  )
  chex.assert_trees_all_close(new.ema["generator"], expected, rtol=1e-6)


def test_new_terms_plug_in_without_changing_the_step():
  """A feature-matching-style G term and a gradient-balanced term, added to the spec only."""
  spec, _ = smoke_spec("dcgan")

  def feature_matching(*, features_real, features_fake):
    diff = jnp.mean(features_real, 0) - jnp.mean(features_fake, 0)
    return jnp.sum(diff**2), {"gap": jnp.max(jnp.abs(diff))}

  def l2(*, params):
    return optax.tree.norm(params, squared=True), {}

  d_phase, g_phase = spec.phases
  g_phase = dataclasses.replace(
    g_phase,
    terms=g_phase.terms
    + (
      game_lib.Term("fm", feature_matching, weight=0.5),
      game_lib.Term("l2", l2, weight=game_lib.BALANCE),
    ),
  )
  spec = dataclasses.replace(spec, phases=(d_phase, g_phase))
  spec_lib.validate(spec)
  state = train.init_state(spec, 0)
  _, metrics = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))(
    state, random_batch(spec)
  )
  assert {"g/fm", "g/fm/gap", "g/l2", "g/balance_weight"} <= set(metrics)
  expected_loss = (
    metrics["g/adv"] + 0.5 * metrics["g/fm"] + metrics["g/balance_weight"] * metrics["g/l2"]
  )
  chex.assert_trees_all_close(metrics["g/loss"], expected_loss, rtol=1e-5)
  assert np.isfinite(float(metrics["g/balance_weight"])) and metrics["g/balance_weight"] > 0


def test_balanced_weight_equalises_gradient_norms():
  """With Term(weight=BALANCE) the applied gradient is ∇a + (‖∇a‖/‖∇b‖)∇b."""
  spec, _ = smoke_spec("dcgan")
  target = jax.tree.map(jnp.ones_like, train.init_state(spec, 0).params["generator"])

  def a(*, params):
    return optax.tree.norm(params, squared=True), {}

  def b(*, params):
    return 3.0 * optax.tree.vdot(params, target), {}

  phase = game_lib.Phase(
    "g", "generator", (game_lib.Term("a", a), game_lib.Term("b", b, weight=game_lib.BALANCE))
  )
  spec = dataclasses.replace(spec, phases=(phase,))
  state = train.init_state(spec, 0)
  grads, metrics, _, _ = step_lib._phase_gradients(
    spec,
    phase,
    state,
    state,
    {"image": None},  # pylint: disable=protected-access
    jax.random.PRNGKey(0),
    {},
  )
  grads = grads["generator"]
  params = state.params["generator"]
  ga = jax.tree.map(lambda p: 2 * p, params)
  gb = jax.tree.map(lambda t: 3 * t, target)
  lam = optax.tree.norm(ga) / optax.tree.norm(gb)
  chex.assert_trees_all_close(metrics["g/balance_weight"], lam, rtol=1e-5)
  chex.assert_trees_all_close(grads, jax.tree.map(lambda u, v: u + lam * v, ga, gb), rtol=1e-5)


def test_unknown_quantity_is_rejected_with_the_available_names():
  spec, _ = smoke_spec("dcgan")
  bad = game_lib.Term("bad", lambda *, d_realz: (d_realz, {}))
  d_phase, g_phase = spec.phases
  spec = dataclasses.replace(spec, phases=(dataclasses.replace(d_phase, terms=(bad,)), g_phase))
  with pytest.raises(ConfigError, match=r"asks for \['d_realz'\].*d_real"):
    spec_lib.validate(spec)
