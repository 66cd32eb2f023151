"""Tempered GAN's lens and AdvAs: schedules, terms, equivalences and gradients."""

import dataclasses
import functools
import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from gan_jax import losses, train
from gan_jax import spec as spec_lib
from gan_jax.core import parallel
from gan_jax.core import step as step_lib
from gan_jax.core.registry import ConfigError
from gan_jax.core.terms import BALANCE
from gan_jax.losses.lens import reconstruction_loss
from gan_jax.stabilisers.lens import lens_lambda
from tests.utils import iterate, random_batch, smoke_config, smoke_spec

OBJECTIVE_CONFIGS = {
  "minimax": "dcgan_minimax",
  "non_saturating": "dcgan",
  "lsgan": "lsgan",
  "wgan": "wgan",
  "wgan_gp": "wgan_gp",
}


@pytest.mark.parametrize(
  "t,expected",
  [
    (0, 1.0),
    (5000, 1 - math.sqrt(2) / 2),
    (10000, 0.0),
    (20000, 0.0),
    (2500, 1 - math.sin(math.pi / 8)),
  ],
)
def test_lambda_schedule(t, expected):
  chex.assert_trees_all_close(lens_lambda(t, schedule="sine", K=10000), expected, atol=1e-6)
  chex.assert_trees_all_close(lens_lambda(t, schedule="constant", K=10000, value=0.3), 0.3)


def test_lens_adversarial_terms_by_hand():
  d = np.array([0.5, -1.0, 2.0], np.float32)
  sig = 1 / (1 + np.exp(-d))
  chex.assert_trees_all_close(
    losses.lens_minimax_loss(d_real=d)[0], -np.mean(np.log(1 - sig)), rtol=1e-6
  )
  chex.assert_trees_all_close(losses.lens_lsgan_loss(d_real=d)[0], 5.25 / 3, rtol=1e-6)
  chex.assert_trees_all_close(losses.lens_wasserstein_loss(d_real=d)[0], 1.5 / 3, rtol=1e-6)


def test_reconstruction_loss_by_hand():
  x = jnp.zeros((2, 2, 2, 1))
  lx = jnp.ones((2, 2, 2, 1)).at[1].set(2.0)
  # per image: 4 * 1 and 4 * 4; batch mean 10; per-pixel mean 2.5.
  chex.assert_trees_all_close(reconstruction_loss(x_real=x, x_real_view=lx)[0], 10.0)
  chex.assert_trees_all_close(
    reconstruction_loss(x_real=x, x_real_view=lx, reduction="mean")[0], 2.5
  )


@pytest.mark.parametrize("objective", sorted(OBJECTIVE_CONFIGS))
def test_lens_and_advas_compose_with_every_objective(objective):
  for stabilisers, phases, g_terms in [
    ("lens", ("d", "g", "lens"), ("adv",)),
    ("advas", ("d", "g"), ("adv", "advas")),
    ("lens,advas", ("d", "g", "lens"), ("adv", "advas")),
  ]:
    spec, _ = smoke_spec(OBJECTIVE_CONFIGS[objective], stabilisers=stabilisers)
    assert tuple(p.name for p in spec.phases) == phases
    assert tuple(t.name for t in spec.phases[1].terms) == g_terms
    assert spec.game.real_view == ("lens" if "lens" in stabilisers else None)


def test_with_and_without_lens_start_from_identical_weights():
  plain, _ = smoke_spec("wgan_gp")
  lensed, _ = smoke_spec("wgan_gp", stabilisers="lens")
  a, b = train.init_state(plain, 0), train.init_state(lensed, 0)
  chex.assert_trees_all_equal(a.params["generator"], b.params["generator"])
  chex.assert_trees_all_equal(a.params["discriminator"], b.params["discriminator"])
  assert "lens" in b.params and "lens" not in a.params


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_zero_lambda_identity_lens_equals_plain_gan(name):
  """λ = 0 and L = identity: G and D follow exactly the plain GAN's trajectory."""
  plain, _ = smoke_spec(name)
  lensed, config = smoke_spec(name, stabilisers="lens")
  config.lens.schedule = "constant"
  config.lens.lambda_value = 0.0
  config.lens.zero_init_output = True
  lensed = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
  a, _ = iterate(plain, train.init_state(plain, 0), 2)
  b, metrics = iterate(lensed, train.init_state(lensed, 0), 2)
  for net in ("generator", "discriminator"):
    chex.assert_trees_all_close(b.params[net], a.params[net], rtol=1e-6, atol=1e-7)
  assert float(metrics["lens/recon"]) == 0.0 and float(metrics["lens/lambda"]) == 0.0


def test_lens_phase_updates_the_lens_and_logs():
  spec, _ = smoke_spec("dcgan", stabilisers="lens")
  state = train.init_state(spec, 0)
  new, metrics = iterate(spec, state, 1)
  assert {
    "lens/adv",
    "lens/recon",
    "lens/lambda",
    "lens/adv/d_lensed",
    "lens/adv/d_data",
    "lens/loss",
  } <= set(metrics)
  chex.assert_trees_all_close(metrics["lens/lambda"], 1.0)
  chex.assert_trees_all_close(new.aux["lens"]["lambda"], lens_lambda(1, schedule="sine", K=10))
  diff = jax.tree.map(
    lambda u, v: jnp.max(jnp.abs(u - v)), new.params["lens"], state.params["lens"]
  )
  assert max(jax.tree.leaves(diff)) > 0
  chex.assert_trees_all_close(
    metrics["lens/loss"],
    metrics["lens/lambda"] * metrics["lens/adv"] + metrics["lens/recon"],
    rtol=1e-5,
  )


def test_combined_step_compiles_once():
  spec, _ = smoke_spec("wgan_gp", stabilisers="lens,advas")
  chex.clear_trace_counter()
  traced = chex.assert_max_traces(step_lib.train_iteration, n=1)
  step = jax.jit(functools.partial(traced, spec=spec), donate_argnums=(0,))
  state = train.init_state(spec, 0)
  for i in range(3):
    state, metrics = step(state, random_batch(spec, i))
  assert step._cache_size() == 1  # pylint: disable=protected-access
  assert {"g/advas", "g/balance_weight", "lens/recon"} <= set(metrics)


def test_lens_leaves_the_step_after_drop_after(tmp_path):
  config = smoke_config("dcgan_lens", lens__drop_after=3)
  state = train.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert "lens/adv" in records[0] and "lens/adv" not in records[-1]
  assert "lens/lambda" in records[-1]
  assert int(state.step) == 6 and "lens" in state.params


# ----------------------------------------------------------------------------- AdvAs


class _TinyG(nn.Module):
  """A smooth generator z (B, 2) -> images (B, 2, 2, 1), float64."""

  @nn.compact
  def __call__(self, z, train=True):
    h = jnp.tanh(nn.Dense(3, param_dtype=jnp.float64, dtype=jnp.float64)(z))
    return jnp.tanh(nn.Dense(4, param_dtype=jnp.float64, dtype=jnp.float64)(h)).reshape(-1, 2, 2, 1)


class _TinyD(nn.Module):
  """A smooth discriminator images (B, 2, 2, 1) -> scores (B,), float64."""

  @nn.compact
  def __call__(self, x, train=True):
    h = jnp.tanh(nn.Dense(3, param_dtype=jnp.float64, dtype=jnp.float64)(x.reshape(-1, 4)))
    return nn.Dense(1, param_dtype=jnp.float64, dtype=jnp.float64)(h)[:, 0]


def _tiny_advas_setup(objective_config):
  spec, _ = smoke_spec(objective_config, stabilisers="advas")
  networks = {
    "generator": dataclasses.replace(
      spec.networks["generator"],
      module=_TinyG(),
      example_input=jax.ShapeDtypeStruct((1, 2), jnp.float64),
    ),
    "discriminator": dataclasses.replace(
      spec.networks["discriminator"],
      module=_TinyD(),
      example_input=jax.ShapeDtypeStruct((1, 2, 2, 1), jnp.float64),
    ),
  }
  game = dataclasses.replace(spec.game, networks=networks, z_dim=2)
  spec = dataclasses.replace(spec, networks=networks, game=game)
  state = train.init_state(spec, 0)
  x = jax.random.uniform(jax.random.PRNGKey(5), (6, 2, 2, 1), jnp.float64, -1, 1)
  advas = spec.phases[1].terms[-1]
  key = jax.random.PRNGKey(7)

  def context(theta, phi=None):
    params = {
      "generator": theta,
      "discriminator": state.params["discriminator"] if phi is None else phi,
    }
    return spec.game.context(
      networks=("generator",),
      params=params,
      model_state=dict(state.model_state),
      batch={"image": x},
      aux=state.aux,
      step=state.step,
      key=key,
    )

  def r(theta):
    ctx = context(theta)
    return advas.fn(**{n: ctx[n] for n in advas.inputs})[0]

  return spec, state, x, context, r


@pytest.mark.parametrize("objective_config", ["dcgan", "wgan_gp"])
def test_advas_penalty_and_gradient_against_finite_differences(objective_config):
  with jax.enable_x64(True):
    spec, state, x, context, r = _tiny_advas_setup(objective_config)
    theta, phi = state.params["generator"], state.params["discriminator"]
    assert spec.phases[1].terms[-1].weight == BALANCE

    # r = ‖∇_φ L_D(φ)‖², with L_D written out by hand (the non-saturating D loss).
    if objective_config == "dcgan":
      z = context(theta)["z"]
      fake = spec.networks["generator"].module.apply({"params": theta}, z)

      def d_loss(p):
        d = lambda v: spec.networks["discriminator"].module.apply({"params": p}, v)
        return jnp.mean(jax.nn.softplus(-d(x))) + jnp.mean(jax.nn.softplus(d(fake)))

      g = jax.grad(d_loss)(phi)
      chex.assert_trees_all_close(
        r(theta), sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(g)), rtol=1e-10
      )

    grad = jax.grad(r)(theta)
    rng = np.random.default_rng(0)
    eps = 1e-5
    for _ in range(3):
      v = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), theta)
      plus = r(jax.tree.map(lambda p, d: p + eps * d, theta, v))
      minus = r(jax.tree.map(lambda p, d: p - eps * d, theta, v))
      fd = (plus - minus) / (2 * eps)
      analytic = sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(v)))
      chex.assert_trees_all_close(analytic, fd, rtol=1e-6, atol=1e-10)


def test_advas_does_not_touch_d_batch_statistics():
  """The penalty pass uses D's batch statistics but does not write running averages."""
  plain, _ = smoke_spec("dcgan")
  advas, _ = smoke_spec("dcgan", stabilisers="advas")
  a, _ = iterate(plain, train.init_state(plain, 0), 1)
  b, metrics = iterate(advas, train.init_state(advas, 0), 1)
  chex.assert_trees_all_close(
    b.model_state["discriminator"], a.model_state["discriminator"], rtol=1e-6
  )
  chex.assert_trees_all_close(b.params["discriminator"], a.params["discriminator"], rtol=1e-6)
  assert float(metrics["g/advas"]) > 0 and float(metrics["g/balance_weight"]) > 0


def _iteration_flops(name, **overrides):
  """XLA's FLOPs of one compiled training iteration of smoke config `name`."""
  spec, _ = smoke_spec(name, **overrides)
  state = train.init_state(spec, 0)
  step = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))
  analysis = step.lower(state, random_batch(spec)).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis["flops"])


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_adaptive_advas_adds_one_backward_pass_through_g(name):
  """The adaptive λ needs ∇θ L_gen and ∇θ r apart: beyond the fixed-λ iteration that costs one
  more backward pass through G, not a second backward pass of both sums. Extra FLOPs over
  the fixed-λ iteration, as a share of the fixed-λ penalty's own: 0.27 (dcgan) and 0.23
  (wgan_gp) with one backward pass per sum, 0.86 and 0.51 with one vjp transposed with the
  cotangents (1, 0) and (0, 1)."""
  plain = _iteration_flops(name)
  fixed = _iteration_flops(name, stabilisers="advas", advas__adaptive=False)
  adaptive = _iteration_flops(name, stabilisers="advas")
  assert fixed > plain
  assert 0 < adaptive - fixed < 0.4 * (fixed - plain)


def test_fixed_advas_weight():
  spec, _ = smoke_spec("dcgan", stabilisers="advas", advas__adaptive=False, advas__weight=0.25)
  assert spec.phases[1].terms[-1].weight == 0.25
  _, metrics = iterate(spec, train.init_state(spec, 0), 1)
  chex.assert_trees_all_close(
    metrics["g/loss"], metrics["g/adv"] + 0.25 * metrics["g/advas"], rtol=1e-5
  )


def test_bad_stabiliser_config():
  with pytest.raises(ConfigError, match=r"unknown stabiliser 'lense'.*advas, (\w+, )*lens"):
    smoke_spec("dcgan", stabilisers="lense")
  with pytest.raises(ConfigError, match=r"lens.schedule; valid: 'sine', 'constant'"):
    smoke_spec("dcgan", stabilisers="lens", lens__schedule="cosine")
  with pytest.raises(ConfigError, match=r"advas.adversary_terms"):
    smoke_spec("dcgan", stabilisers="advas", advas__adversary_terms="some")
