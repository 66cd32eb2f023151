"""Improved Techniques for Training GANs (Salimans et al. 2016): each technique against a hand
computation, 4 devices against 1, resume with the new state, and a run of improved_gan."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import train
from gan_jax.core import step as step_lib
from gan_jax.core.registry import ConfigError
from gan_jax.images import images_to_float
from gan_jax.losses.adversarial import lsgan_discriminator_loss
from gan_jax.losses.improved import feature_matching_loss, historical_averaging_penalty
from gan_jax.models.dcgan import Discriminator, Generator
from gan_jax.models.layers import MinibatchDiscrimination, VirtualBatchNorm, minibatch_features
from gan_jax.objectives import OBJECTIVES
from gan_jax.stabilisers.improved import feature_matching_term
from tests.utils import iterate, random_batch, smoke_spec

RNG = np.random.default_rng(0)
KEY = jax.random.PRNGKey(0)


def _terms(spec):
  return {p.name: [t.name for t in p.terms] for p in spec.phases}


# ----------------------------------------------------------------------------- feature matching


@pytest.mark.parametrize("distance", ["squared_l2", "mean_squared", "mean_abs"])
def test_feature_matching_value_and_gradient(distance):
  real = RNG.normal(size=(6, 10)).astype(np.float32)
  fake = RNG.normal(0.5, 2.0, size=(6, 10)).astype(np.float32)
  m = real.astype(np.float64).mean(0) - fake.astype(np.float64).mean(0)
  n, f = fake.shape
  expected, grad = {
    "squared_l2": (np.sum(m**2), -2 * m / n),
    "mean_squared": (np.mean(m**2), -2 * m / (n * f)),
    "mean_abs": (np.mean(np.abs(m)), -np.sign(m) / (n * f)),
  }[distance]
  loss = lambda x: feature_matching_loss(features_real=real, features_fake=x, distance=distance)
  value, metrics = loss(fake)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["gap"], np.mean(np.abs(m)), rtol=1e-5)
  got = jax.grad(lambda x: loss(x)[0])(fake)
  np.testing.assert_allclose(got, np.broadcast_to(grad, fake.shape), rtol=1e-4, atol=1e-7)
  # And against central finite differences on a few entries.
  for i, j in [(0, 0), (3, 7), (5, 9)]:
    e = np.zeros_like(fake)
    e[i, j] = 1e-2
    fd = (float(loss(fake + e)[0]) - float(loss(fake - e)[0])) / 2e-2
    np.testing.assert_allclose(got[i, j], fd, rtol=2e-2, atol=1e-5)


def test_feature_matching_reads_the_chosen_layer_of_the_discriminator_passes():
  d = Discriminator(width=4, norm="batch")
  x = RNG.uniform(-1, 1, size=(3, 16, 16, 1)).astype(np.float32)
  variables = d.init(jax.random.PRNGKey(0), x, train=False)
  _, sown = d.apply(variables, x, train=False, mutable=["intermediates"])
  d_pass = {k: v[0] for k, v in sown["intermediates"].items()}
  assert sorted(d_pass) == ["block0", "block1", "features"]
  assert d_pass["block0"].shape == (3, 8, 8, 4) and d_pass["features"].shape == (3, 4 * 4 * 8)
  other = jax.tree.map(lambda v: v[::-1] * 2.0, d_pass)
  for layer in ("features", "block0"):
    value, _ = feature_matching_term(d_real_pass=d_pass, d_fake_pass=other, layer=layer)
    expected, _ = feature_matching_loss(features_real=d_pass[layer], features_fake=other[layer])
    np.testing.assert_allclose(value, expected, rtol=1e-6)
  with pytest.raises(ConfigError, match="feature_matching.layer.*block0"):
    feature_matching_term(d_real_pass=d_pass, d_fake_pass=other, layer="block9")


def test_feature_matching_replaces_or_joins_the_adversarial_loss():
  on = {"stabilisers": "feature_matching"}
  spec, _ = smoke_spec("dcgan", **on)
  assert _terms(spec) == {"d": ["adv"], "g": ["feature_matching"]}
  spec, _ = smoke_spec("dcgan", feature_matching__replace_adversarial=False, **on)
  assert _terms(spec) == {"d": ["adv"], "g": ["adv", "feature_matching"]}
  with pytest.raises(ConfigError, match="feature_matching.distance.*'mean_abs'"):
    smoke_spec("dcgan", feature_matching__distance="l1", **on)


# ----------------------------------------------------------------------------- minibatch disc.


def _naive_minibatch(f, t, exclude_self):
  """o(x_i)_b = Σ_j exp(−Σ_c |M_ibc − M_jbc|) by loops, in float64."""
  m = np.einsum("na,abc->nbc", f.astype(np.float64), t.astype(np.float64))
  n, b_dim, _ = m.shape
  o = np.zeros((n, b_dim))
  for i in range(n):
    for j in range(n):
      if exclude_self and i == j:
        continue
      for b in range(b_dim):
        o[i, b] += np.exp(-np.sum(np.abs(m[i, b] - m[j, b])))
  return o


@pytest.mark.parametrize("exclude_self", [True, False])
def test_minibatch_discrimination_matches_a_double_loop(exclude_self):
  f = RNG.normal(size=(5, 7)).astype(np.float32)
  layer = MinibatchDiscrimination(num_kernels=4, kernel_dim=3, exclude_self=exclude_self)
  params = layer.init(jax.random.PRNGKey(1), f)
  t = np.asarray(params["params"]["T"])
  assert t.shape == (7, 4, 3)
  out = np.asarray(layer.apply(params, f))
  expected = _naive_minibatch(f, t, exclude_self)
  assert out.shape == (5, 7 + 4)
  np.testing.assert_array_equal(out[:, :7], f)
  np.testing.assert_allclose(out[:, 7:], expected, rtol=1e-5)
  # The pure function alone, on M itself.
  m = np.einsum("na,abc->nbc", f, t)
  np.testing.assert_allclose(minibatch_features(m, exclude_self=exclude_self), expected, rtol=1e-5)


# ----------------------------------------------------------------------------- VBN


def _hand_vbn(h, reference_size, scale, bias, eps=1e-5):
  """Batch norm of each example over (reference batch + that example); reference alone."""
  h = h.astype(np.float64)
  ref = h[:reference_size]
  out = np.empty_like(h)
  for i in range(len(h)):
    group = ref if i < reference_size else np.concatenate([ref, h[i : i + 1]])
    axes = tuple(range(h.ndim - 1))
    mean, var = group.mean(axes), group.var(axes)
    out[i] = (h[i] - mean) / np.sqrt(var + eps) * scale + bias
  return out


def test_virtual_batch_norm_matches_a_hand_written_batch_norm():
  r = 4
  h = RNG.normal(1.0, 2.0, size=(r + 3, 3, 3, 5)).astype(np.float32)
  layer = VirtualBatchNorm(reference_size=r)
  params = layer.init(jax.random.PRNGKey(0), h)
  scale = RNG.normal(size=5).astype(np.float32)
  bias = RNG.normal(size=5).astype(np.float32)
  params = {"params": {"scale": scale, "bias": bias}}
  out = np.asarray(layer.apply(params, h))
  np.testing.assert_allclose(out, _hand_vbn(h, r, scale, bias), rtol=1e-4, atol=1e-5)
  # An example's output depends on the reference batch and itself only.
  other = h.copy()
  other[r + 1 :] = RNG.normal(size=other[r + 1 :].shape)
  np.testing.assert_allclose(layer.apply(params, other)[: r + 1], out[: r + 1], rtol=1e-6)


def test_vbn_generator_output_of_an_example_does_not_depend_on_its_batch():
  g = Generator(image_size=16, channels=1, width=4, norm="virtual_batch", vbn_reference_size=3)
  z = jnp.asarray(RNG.normal(size=(5, 8)).astype(np.float32))
  variables = g.init(jax.random.PRNGKey(0), z[:1], train=False)
  assert variables["vbn_reference"]["input"].shape == (3, 8)
  variables = {**variables, "vbn_reference": {"input": jnp.asarray(RNG.normal(size=(3, 8)))}}
  whole = g.apply(variables, z, train=True)
  alone = g.apply(variables, z[2:3], train=False)
  np.testing.assert_allclose(whole[2:3], alone, rtol=1e-5, atol=1e-6)


def test_vbn_reference_batches_are_chosen_at_initialisation():
  spec, config = smoke_spec(
    "improved_gan", model__discriminator_norm="virtual_batch", stabilisers=""
  )
  r = config.train.batch_size
  batch = {"image": random_batch(spec)["image"][0]}
  state = train.init_state(spec, 0, batch)
  reference = state.model_state["discriminator"]["vbn_reference"]["input"]
  np.testing.assert_array_equal(reference, images_to_float(jnp.asarray(batch["image"][:r])))
  z_ref = state.model_state["generator"]["vbn_reference"]["input"]
  assert z_ref.shape == (r, config.model.z_dim) and float(jnp.std(z_ref)) > 0.5
  # G's is noise from the seed: the same for another real batch.
  other = train.init_state(spec, 0, {"image": batch["image"][::-1]})
  np.testing.assert_array_equal(other.model_state["generator"]["vbn_reference"]["input"], z_ref)
  with pytest.raises(ConfigError, match="virtual batch norm in 'discriminator'"):
    train.init_state(spec, 0)
  with pytest.raises(ConfigError, match="model.generator_norm.*'virtual_batch'"):
    smoke_spec("dcgan", model__generator_norm="virtual")


# ----------------------------------------------------------------------------- data parallel


def test_minibatch_discrimination_and_vbn_on_4_devices_equal_1_device():
  """The sum over j of minibatch discrimination runs over the global batch and VBN's reference
  batch is replicated: 4 devices give 1 device's parameters and metrics."""
  assert jax.device_count() == 4
  overrides = dict(
    model__discriminator_norm="virtual_batch",
    model__minibatch_kernels=16,
    stabilisers="feature_matching",
  )
  results = []
  for devices in (1, 4):
    spec, _ = smoke_spec("improved_gan", devices=devices, **overrides)
    batch = {"image": random_batch(spec, seed=9)["image"][0]}
    state, metrics = iterate(spec, train.init_state(spec, 0, batch), 2, donate=True)
    if devices == 4:
      assert len(state.params["discriminator"]["minibatch"]["T"].sharding.device_set) == 4
    results.append((jax.device_get(state), jax.device_get(metrics)))
  (s1, m1), (s4, m4) = results
  chex.assert_trees_all_close(s4.params, s1.params, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(s4.model_state, s1.model_state, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(m4, m1, rtol=1e-4, atol=1e-5)
  assert all(np.isfinite(v) for v in m1.values()), m1
  np.testing.assert_allclose(m1["g/loss"], m1["g/adv"] + m1["g/feature_matching"], rtol=1e-5)


def test_minibatch_features_of_a_sharded_batch_sum_over_the_global_batch():
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  m = RNG.normal(size=(8, 3, 2)).astype(np.float32)
  fn = functools.partial(minibatch_features, exclude_self=True)
  got = jax.jit(fn, in_shardings=sharded)(jax.device_put(m, sharded))
  np.testing.assert_allclose(got, _naive_minibatch_from_m(m), rtol=1e-5)


def _naive_minibatch_from_m(m):
  n = len(m)
  return np.array(
    [
      [
        sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(n) if j != i)
        for b in range(m.shape[1])
      ]
      for i in range(n)
    ]
  )


# ----------------------------------------------------------------------------- historical avg


def test_historical_average_after_5_steps_is_the_mean_of_the_parameter_history():
  spec, _ = smoke_spec("dcgan", stabilisers="historical_averaging")
  assert _terms(spec) == {
    "d": ["adv", "historical_averaging"],
    "g": ["adv", "historical_averaging"],
  }
  step = jax.jit(functools.partial(step_lib.train_iteration, spec=spec))
  state = train.init_state(spec, 0)
  history = [jax.device_get(state.params)]
  for i in range(5):
    before = history[-1]
    state, metrics = step(state, random_batch(spec, i))
    history.append(jax.device_get(state.params))
  aux = jax.device_get(state.aux["historical_averaging"])
  assert aux["count"] == 6  # θ_0 (initial) … θ_5 (after the 5th iteration)
  for net in ("generator", "discriminator"):
    mean = jax.tree.map(lambda *p: np.mean(np.stack(p).astype(np.float64), 0), *history)
    chex.assert_trees_all_close(aux["mean"][net], mean[net], rtol=1e-5, atol=1e-7)
    # The 5th iteration's term: its starting θ_4 against the mean of θ_0 … θ_4.
    mean4 = jax.tree.map(lambda *p: np.mean(np.stack(p).astype(np.float64), 0), *history[:5])
    sq = sum(
      np.sum((a - b) ** 2)
      for a, b in zip(jax.tree.leaves(before[net]), jax.tree.leaves(mean4[net]))
    )
    phase = "g" if net == "generator" else "d"
    np.testing.assert_allclose(metrics[f"{phase}/historical_averaging"], sq, rtol=1e-4)
  # The penalty's gradient is 2(θ − average); the average is a constant.
  theta = {"w": jnp.array([1.0, -2.0])}
  avg = {"w": jnp.array([0.5, 0.5])}
  g = jax.grad(lambda p, a: historical_averaging_penalty(params=p, average=a)[0], (0, 1))
  g_theta, g_avg = g(theta, avg)
  np.testing.assert_allclose(g_theta["w"], [1.0, -5.0])
  np.testing.assert_allclose(g_avg["w"], [0.0, 0.0])


def test_historical_averaging_config_errors():
  with pytest.raises(ConfigError, match="historical_averaging.networks.*'generator'"):
    smoke_spec("dcgan", stabilisers="historical_averaging", historical_averaging__networks="gen")
  spec, _ = smoke_spec(
    "dcgan", stabilisers="historical_averaging", historical_averaging__networks="generator"
  )
  assert _terms(spec) == {"d": ["adv"], "g": ["adv", "historical_averaging"]}


# ----------------------------------------------------------------------------- label smoothing


@pytest.mark.parametrize("name", ["minimax", "non_saturating", "lsgan"])
def test_one_sided_label_smoothing_leaves_fake_targets_at_zero(name):
  d_real = jnp.asarray(RNG.normal(size=6).astype(np.float32))
  d_fake = jnp.asarray(RNG.normal(size=6).astype(np.float32))
  cfg = {"real_label": 1.0, "gp_weight": 10.0, "clip": 0.01}
  plain, smooth = (
    OBJECTIVES.get(name)({**cfg, "real_label": a}).discriminator[0].fn for a in (1.0, 0.9)
  )
  grad_fake = lambda fn: jax.grad(lambda f: fn(d_real=d_real, d_fake=f)[0])(d_fake)
  grad_real = lambda fn, r: jax.grad(lambda x: fn(d_real=x, d_fake=d_fake)[0])(r)
  # D's loss depends on d_fake in the same way with and without smoothing: fake target 0.
  np.testing.assert_array_equal(grad_fake(smooth), grad_fake(plain))
  # The real part is minimised where D's real prediction equals α = 0.9.
  optimum = 0.9 if name == "lsgan" else float(np.log(0.9 / 0.1))  # sigmoid(d) = 0.9
  np.testing.assert_allclose(grad_real(smooth, jnp.full(6, optimum)), 0.0, atol=1e-6)
  assert np.all(np.abs(grad_real(plain, jnp.full(6, optimum))) > 1e-3)
  # G's loss does not change.
  generators = [OBJECTIVES.get(name)({**cfg, "real_label": a}).generator[0].fn for a in (1, 0.9)]
  assert generators[0] is generators[1]


def test_lsgan_at_real_label_one_is_bit_identical():
  d_real = jnp.asarray(RNG.normal(size=6).astype(np.float32))
  d_fake = jnp.asarray(RNG.normal(size=6).astype(np.float32))
  fn = OBJECTIVES.get("lsgan")({"real_label": 1.0}).discriminator[0].fn
  np.testing.assert_array_equal(
    fn(d_real=d_real, d_fake=d_fake)[0], lsgan_discriminator_loss(d_real=d_real, d_fake=d_fake)[0]
  )
  # A config without the field (written before it existed) is the plain LSGAN.
  assert OBJECTIVES.get("lsgan")({}).discriminator[0].fn.keywords == {"real_target": 1.0}


# ----------------------------------------------------------------------------- runs


def test_improved_gan_smoke_run():
  """A few iterations of configs/improved_gan.py:smoke, every technique on."""
  spec, config = smoke_spec("improved_gan")
  assert _terms(spec) == {
    "d": ["adv", "historical_averaging"],
    "g": ["adv", "feature_matching", "historical_averaging"],
  }
  assert config.objective.real_label == 0.9 and config.model.minibatch_kernels == 100
  state, metrics = iterate(spec, train.init_state(spec, 0), 3, donate=True)
  metrics = jax.device_get(metrics)
  assert int(state.step) == 3
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  fm, ha = config.feature_matching.weight, config.historical_averaging.generator_weight
  np.testing.assert_allclose(
    metrics["g/loss"],
    metrics["g/adv"] + fm * metrics["g/feature_matching"] + ha * metrics["g/historical_averaging"],
    rtol=1e-5,
  )
  assert "vbn_reference" in state.model_state["generator"]
  assert "batch_stats" not in state.model_state["generator"]
  # Samples (inference mode) use the same reference batch.
  images = spec.game.sample(state.params, state.model_state, spec.game.sample_inputs(KEY, 4))
  assert images["generated"].shape == (4, 16, 16, 1)


def test_resume_is_bit_identical_with_historical_averages_and_vbn_references(tmp_path):
  """4 iterations in one go == 2, save, restore onto a fresh abstract state, 2 more."""
  spec, config = smoke_spec("improved_gan", model__discriminator_norm="virtual_batch")
  init_batch = {"image": random_batch(spec, seed=5)["image"][0]}
  step = train.compile_train_iteration(spec)
  run = lambda state, steps: functools.reduce(
    lambda s, i: step(s, random_batch(spec, i))[0], steps, state
  )
  full = jax.device_get(run(train.init_state(spec, 0, init_batch), range(4)))
  checkpoints = checkpoint_lib.Checkpointer(str(tmp_path), keep=1, config={})
  checkpoints.save(2, run(train.init_state(spec, 0, init_batch), range(2)))
  checkpoints.wait()
  # The abstract state needs only the batch's shape: the reference batches come from the file.
  restored = checkpoints.restore(train.abstract_state(spec, 0))
  resumed = jax.device_get(run(restored, range(2, 4)))
  checkpoints.close()
  chex.assert_trees_all_equal(resumed, full)
  assert int(full.aux["historical_averaging"]["count"]) == 5
  r = config.train.batch_size
  np.testing.assert_array_equal(
    full.model_state["discriminator"]["vbn_reference"]["input"],
    images_to_float(jnp.asarray(init_batch["image"][:r])),
  )
