"""The plug-ins of docs/extending.md (tests/extensions/): each value against a hand
computation, a smoke run with all of them plugged in, and feature matching's D passes."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gan_jax import configs, train
from gan_jax import spec as spec_lib
from gan_jax.core import parallel
from gan_jax.core import step as step_lib
from gan_jax.objectives import OBJECTIVES
from tests.extensions import feature_matching, hinge, r1
from tests.utils import iterate

GAMMA, FM_WEIGHT = 4.0, 0.5


def _config(objective="non_saturating", stabilisers=()):
  """The DCGAN smoke config with `objective` and the plug-in stabilisers `stabilisers`."""
  config = configs.get("dcgan", "smoke")
  if config.is_locked:
    config.unlock()
  config.objective.name = objective
  config.stabilisers = ",".join(stabilisers)
  config.r1 = ml_collections.ConfigDict({"gamma": GAMMA})
  config.my_feature_matching = ml_collections.ConfigDict({"weight": FM_WEIGHT})
  return config


def _spec(config):
  return spec_lib.build_spec(config, mesh=parallel.make_mesh(1))


# ----------------------------------------------------------------------------- values


def test_hinge_losses_on_chosen_scores():
  d_real = jnp.array([2.0, 0.5, -1.0])
  d_fake = jnp.array([-2.0, 0.0, 1.5])
  # max(0, 1 - d_real) = (0, 0.5, 2); max(0, 1 + d_fake) = (0, 1, 2.5).
  loss, metrics = hinge.hinge_discriminator_loss(d_real=d_real, d_fake=d_fake)
  np.testing.assert_allclose(loss, 2.5 / 3 + 3.5 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics["d_fake"], -0.5 / 3, rtol=1e-6)
  loss, _ = hinge.hinge_generator_loss(d_fake=d_fake)
  np.testing.assert_allclose(loss, 0.5 / 3, rtol=1e-6)
  objective = OBJECTIVES.get("hinge")({})
  assert [t.fn for t in objective.discriminator] == [hinge.hinge_discriminator_loss]
  assert [t.fn for t in objective.generator] == [hinge.hinge_generator_loss]


def test_r1_of_a_linear_critic_is_the_squared_weight_norm():
  # d(x) = <w, x> has ∇_x d = w for every x, so E ‖∇‖² = ‖w‖².
  rng = np.random.default_rng(0)
  w = rng.normal(size=(6, 6, 3)).astype(np.float32)
  x = rng.normal(size=(5, 6, 6, 3)).astype(np.float32)
  critic = lambda images: jnp.sum(images * w, axis=(1, 2, 3))
  value, metrics = r1.r1_penalty(critic=critic, x_real_view=x)
  np.testing.assert_allclose(value, np.sum(w**2), rtol=1e-5)
  np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(w), rtol=1e-5)


def test_r1_term_has_weight_half_gamma_on_d():
  spec = _spec(_config(stabilisers=("r1",)))
  terms = {p.name: {t.name: t for t in p.terms} for p in spec.phases}
  assert terms["d"]["r1"].weight == GAMMA / 2
  assert "r1" not in terms["g"]


def test_feature_matching_matches_numpy():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(8, 12)).astype(np.float32)
  fake = rng.normal(1.0, 2.0, size=(8, 12)).astype(np.float32)
  value, _ = feature_matching.feature_matching_loss(features_real=real, features_fake=fake)
  expected = np.sum((real.astype(np.float64).mean(0) - fake.astype(np.float64).mean(0)) ** 2)
  np.testing.assert_allclose(value, expected, rtol=1e-5)


# ----------------------------------------------------------------------------- training


def test_smoke_run_with_all_plugins():
  config = _config("hinge", ("r1", "my_feature_matching"))
  spec = _spec(config)
  assert spec.phases[0].terms[0].fn is hinge.hinge_discriminator_loss
  state = train.init_state(spec, seed=0)
  state, metrics = iterate(spec, state, 3)
  metrics = jax.device_get(metrics)
  assert int(state.step) == 3
  for name in ("d/adv", "d/r1", "d/r1/grad_norm", "g/adv", "g/my_feature_matching"):
    assert name in metrics, f"{name} missing from {sorted(metrics)}"
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["d/r1"] > 0 and metrics["g/my_feature_matching"] > 0
  # Each phase's loss is its terms weighted as configured (n_critic = 1: no averaging).
  np.testing.assert_allclose(
    metrics["d/loss"], metrics["d/adv"] + GAMMA / 2 * metrics["d/r1"], rtol=1e-5
  )
  np.testing.assert_allclose(
    metrics["g/loss"], metrics["g/adv"] + FM_WEIGHT * metrics["g/my_feature_matching"], rtol=1e-5
  )


def _discriminator_passes(spec) -> int:
  """Calls of D's module while one training iteration is traced."""
  d_type = type(spec.networks["discriminator"].module)
  calls = []

  def count(next_fn, args, kwargs, context):
    if type(context.module) is d_type and context.method_name == "__call__":
      calls.append(1)
    return next_fn(*args, **kwargs)

  state = train.abstract_state(spec, seed=0)
  shape = (spec.batches_per_iteration, spec.batch_size) + spec.image_shape
  batch = {"image": jax.ShapeDtypeStruct(shape, jnp.uint8)}
  with nn.intercept_methods(count):
    # A new partial each time, so the trace is not taken from a cache.
    jax.eval_shape(functools.partial(step_lib.train_iteration, spec=spec), state, batch)
  return len(calls)


def test_feature_matching_reuses_the_discriminator_passes():
  # Without it: D's phase runs D on the real and the generated batch, G's phase on the
  # generated batch. Feature matching adds only D on the real batch to G's phase; features
  # computed by passes of their own would add a second pass on G(z) as well.
  assert _discriminator_passes(_spec(_config())) == 3
  assert _discriminator_passes(_spec(_config(stabilisers=("my_feature_matching",)))) == 4
