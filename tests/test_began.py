"""BEGAN: the equilibrium controller and learning-rate halving against hand computation, the
losses and one full iteration against a hand-written one, checkpoint resume, compile-once, data
parallelism, the networks' shapes and the vanishing-residual schedule."""
# pylint: disable=protected-access

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental.compilation_cache import compilation_cache as cache

from gan_jax import spec as spec_lib
from gan_jax import train
from gan_jax.core import parallel
from gan_jax.core import step as step_lib
from gan_jax.core.random import named_key
from gan_jax.core.registry import ConfigError
from gan_jax.images import images_to_float
from gan_jax.models import MODELS
from gan_jax.models import began as models_lib
from gan_jax.stabilisers import began as began_lib
from tests.utils import random_batch, smoke_config, smoke_spec


def _with_vanishing_residual(config, steps=4, stages=2):
  config.stabilisers = "vanishing_residual"
  config.vanishing_residual = {"steps": steps, "stages": stages}
  return config


def _settings(**changes):
  return began_lib.EquilibriumSettings(**{"lr_schedule": "none", **changes})


def _run_controller(settings, reals, fakes, state=None):
  """Feeds the controller one iteration's metrics per (real, fake); returns states, metrics."""
  state = began_lib.init_state(settings) if state is None else state
  update = jax.jit(functools.partial(began_lib.update_state, settings=settings))
  states, metrics = [], []
  for t, (real, fake) in enumerate(zip(reals, fakes)):
    state, m = update(
      state,
      metrics={"d/adv/real": jnp.float32(real), "g/adv": jnp.float32(fake)},
      step=jnp.int32(t),
    )
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return states, metrics


def test_controller_follows_hand_computation_with_clipping():
  """k_{t+1} = clip(k_t + λ_k(γ L(x) - L(G(z_G))), 0, 1), hitting both bounds."""
  gamma, lam = 0.5, 0.25
  reals = [1.0, 2.0, 4.0, 4.0, 1.0, 0.5, 0.5, 2.0]
  fakes = [0.1, 0.2, 0.0, 0.1, 3.0, 2.0, 0.25, 0.5]
  states, metrics = _run_controller(_settings(gamma=gamma, lambda_k=lam), reals, fakes)
  k, expected_k, expected_used = 0.0, [], []
  for real, fake in zip(reals, fakes):
    expected_used.append(k)
    k = min(max(k + lam * (gamma * real - fake), 0.0), 1.0)
    expected_k.append(k)
  # The trajectory really reaches both bounds and leaves them again.
  assert 1.0 in expected_k and 0.0 in expected_k[1:] and 0 < expected_k[-1] < 1
  chex.assert_trees_all_close([s["k"] for s in states], expected_k, atol=1e-6)
  chex.assert_trees_all_close([m["k"] for m in metrics], expected_used, atol=1e-6)
  chex.assert_trees_all_close(
    [m["m_global"] for m in metrics],
    [r + abs(gamma * r - f) for r, f in zip(reals, fakes)],
    rtol=1e-6,
  )
  chex.assert_trees_all_close(
    [m["ratio"] for m in metrics], [f / r for r, f in zip(reals, fakes)], rtol=1e-6
  )
  assert all(m["gamma"] == np.float32(gamma) and m["lr_scale"] == 1 for m in metrics)


def test_learning_rate_halves_when_m_global_stalls():
  """decay 0 (the average is M_global itself), patience 3: a decay after 3 iterations without
  a new minimum, then again 3 later, floored at lr_min_scale."""
  settings = _settings(
    lr_schedule="plateau",
    m_global_decay=0.0,
    lr_patience=3,
    lr_threshold=0.0,
    lr_min_scale=0.375,
    gamma=1.0,
  )
  m_global = [5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.0]
  # With γ = 1 and L(G(z)) = L(x), M_global = L(x).
  states, metrics = _run_controller(settings, m_global, m_global)
  chex.assert_trees_all_close([m["m_global"] for m in metrics], m_global)
  scales = [float(s["lr_scale"]) for s in states]
  assert scales == [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.375, 0.375]
  assert [int(s["wait"]) for s in states] == [0, 0, 0, 1, 2, 0, 1, 2, 0, 0]
  assert [float(m["lr_scale"]) for m in metrics] == [1.0] + scales[:-1]


def test_m_global_average_is_bias_corrected():
  settings = _settings(lr_schedule="plateau", m_global_decay=0.9)
  states, _ = _run_controller(settings, [2.0, 4.0], [1.0, 2.0])
  # M = 2 + |1 - 1| = 2, then 4; average = (0.1·0.9·2 + 0.1·4) / (1 - 0.81).
  chex.assert_trees_all_close(states[0]["m_ema"] / states[0]["ema_weight"], 2.0, rtol=1e-6)
  chex.assert_trees_all_close(
    states[1]["m_ema"] / states[1]["ema_weight"], (0.18 + 0.4) / 0.19, rtol=1e-6
  )


def test_learning_rate_halves_at_fixed_intervals():
  settings = _settings(lr_schedule="interval", lr_interval=3, lr_min_scale=0.1875)
  states, _ = _run_controller(settings, [1.0] * 9, [0.5] * 9)
  assert [float(s["lr_scale"]) for s in states] == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.1875]


# Overrides that make k_t move visibly and the learning rate decay within a few steps.
FAST = dict(objective__lr_schedule="interval", objective__lr_interval=2, objective__lambda_k=0.05)


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent compilation cache for this module: XLA:CPU compilation dominates these
  tests, and the resumed runs compile exactly what the first run compiled."""
  names = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
  )
  old = {n: getattr(jax.config, n) for n in names}
  cache.reset_cache()
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  yield
  cache.reset_cache()
  for name, value in old.items():
    jax.config.update(name, value)


@pytest.fixture(scope="module")
def initial_state():
  """The smoke config's initial TrainState as the 4-device runs below create it (its values
  depend neither on the mesh nor on η or λ_k), on the host."""
  spec, _ = smoke_spec("began", devices=4, **FAST)
  return jax.device_get(train.init_state(spec, 0))


@pytest.fixture(scope="module")
def single_device_run(initial_state):
  """Three iterations on one device from k = 0.3, lr_scale = 0.5, under assert_max_traces.

  Returns:
    (spec, the 4 states on the host, the 3 iterations' metrics, the jit's cache size).
  """
  spec, _ = smoke_spec("began", **FAST)
  chex.clear_trace_counter()
  step = jax.jit(
    functools.partial(chex.assert_max_traces(step_lib.train_iteration, n=1), spec=spec)
  )
  states, metrics = [_with_k(initial_state, 0.3, 0.5)], []
  for i in range(3):
    # Every call gets host arrays, so the arguments' placement is the same for all three.
    state, m = step(jax.device_put(states[-1]), random_batch(spec, i))
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return spec, states, metrics, step._cache_size()


def _with_k(state, k, scale=1.0):
  return state.replace(
    aux={"began": {**state.aux["began"], "k": jnp.float32(k), "lr_scale": jnp.float32(scale)}}
  )


def _noise(spec, state, phase):
  """z of `phase` in the state's next iteration, derived as documented in gan_jax.step: a key
  per phase by name, one per repeat, then the context's key."""
  rng = jax.random.fold_in(state.rng, state.step)
  key = jax.random.split(jax.random.fold_in(named_key(rng, phase), 0))[0]
  return jax.random.uniform(key, (spec.batch_size, spec.game.z_dim), minval=-1.0, maxval=1.0)


def _reconstruction(module, params, x):
  _, inter = module.apply({"params": params}, x, mutable=["intermediates"])
  return inter["intermediates"]["reconstruction"][0]


@pytest.mark.parametrize("eta", [1, 2])
def test_losses_match_hand_computation(eta, initial_state):
  """d/adv = mean L(x) - k·mean L(G(z_D)) and g/adv = mean L(G(z_G)), with L(v) =
  mean |v - D(v)|^η computed here from D's reconstructions."""
  spec, _ = smoke_spec("began", model__eta=eta)
  state = _with_k(initial_state, 0.3)
  batch = random_batch(spec)
  G = spec.networks["generator"].module
  D = spec.networks["discriminator"].module
  theta, phi = state.params["generator"], state.params["discriminator"]
  one_batch = {"image": images_to_float(jnp.asarray(batch["image"][0]))}

  @jax.jit
  def run():
    rng = jax.random.fold_in(state.rng, state.step)
    metrics = {}
    for phase in spec.phases:
      key = jax.random.fold_in(named_key(rng, phase.name), 0)
      params = {n: state.params[n] for n in phase.networks}
      _, (m, _, _) = step_lib._phase_loss(spec, phase, state, state, one_batch, key, {}, params)
      metrics.update(m)
    fakes = [G.apply({"params": theta}, _noise(spec, state, p)) for p in ("d", "g")]
    recons = [_reconstruction(D, phi, v) for v in [one_batch["image"]] + fakes]
    return metrics, [one_batch["image"]] + fakes, recons

  metrics, inputs, recons = jax.device_get(run())
  real, fake_d, fake_g = [
    np.mean(np.abs(v.astype(np.float64) - r) ** eta) for v, r in zip(inputs, recons)
  ]
  chex.assert_trees_all_close(metrics["d/adv/real"], real, rtol=1e-5)
  chex.assert_trees_all_close(metrics["d/adv/fake"], fake_d, rtol=1e-5)
  chex.assert_trees_all_close(metrics["d/adv"], real - 0.3 * fake_d, rtol=1e-5)
  chex.assert_trees_all_close(metrics["g/adv"], fake_g, rtol=1e-5)
  assert abs(fake_d - fake_g) > 1e-4  # z_D and z_G are different draws.


def test_iteration_matches_hand_written_began(single_device_run):
  """One generic iteration = simultaneous Adam updates of D and G, both gradients taken at
  (θ_t, φ_t), each scaled by the controller's lr_scale, then k_{t+1} from the same losses."""
  spec, states, all_metrics, _ = single_device_run
  state, new, metrics = states[0], states[1], all_metrics[0]
  k, scale, lambda_k = 0.3, 0.5, 0.05
  x = images_to_float(jnp.asarray(random_batch(spec, 0)["image"][0]))
  G = spec.networks["generator"].module
  D = spec.networks["discriminator"].module
  theta, phi = state.params["generator"], state.params["discriminator"]
  z_d, z_g = _noise(spec, state, "d"), _noise(spec, state, "g")
  loss = lambda phi, v: jnp.mean(jnp.abs(v - _reconstruction(D, phi, v)))
  d_loss = lambda phi: loss(phi, x) - k * loss(phi, G.apply({"params": theta}, z_d))
  g_loss = lambda theta: loss(phi, G.apply({"params": theta}, z_g))
  adam = optax.adam(1e-4, b1=0.5)

  @jax.jit
  def reference():
    def update(params, grads):
      updates, _ = adam.update(grads, adam.init(params), params)
      return optax.apply_updates(params, jax.tree.map(lambda u: scale * u, updates))

    l_d, g_phi = jax.value_and_grad(d_loss)(phi)
    l_g, g_theta = jax.value_and_grad(g_loss)(theta)
    return l_d, l_g, loss(phi, x), update(phi, g_phi), update(theta, g_theta)

  l_d, l_g, l_real, phi_new, theta_new = jax.device_get(reference())
  chex.assert_trees_all_close(metrics["d/loss"], l_d, rtol=1e-5)
  chex.assert_trees_all_close(metrics["g/loss"], l_g, rtol=1e-5)
  chex.assert_trees_all_close(new.params["discriminator"], phi_new, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(new.params["generator"], theta_new, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(
    new.aux["began"]["k"], np.clip(k + lambda_k * (0.5 * l_real - l_g), 0, 1), rtol=1e-6
  )
  chex.assert_trees_all_close(
    metrics["began/m_global"], l_real + abs(0.5 * l_real - l_g), rtol=1e-5
  )
  assert metrics["began/k"] == np.float32(k) and metrics["began/lr_scale"] == scale


def test_compiles_once(single_device_run):
  _, states, _, cache_size = single_device_run
  assert cache_size == 1 and int(states[-1].step) == 3


def test_data_parallel_equals_single_device(single_device_run):
  """4 devices and 1 device at the same global batch: same parameters, k_t and metrics."""
  _, states, metrics, _ = single_device_run
  spec, _ = smoke_spec("began", devices=4, **FAST)
  state = jax.device_put(states[0], parallel.replicated(spec.mesh))
  step = train.compile_train_iteration(spec)
  for i in range(3):
    state, m = step(state, random_batch(spec, i))
  assert len(state.params["generator"]["project"]["kernel"].sharding.device_set) == 4
  chex.assert_trees_all_close(
    jax.device_get((state.params, state.aux, m)),
    (states[-1].params, states[-1].aux, metrics[-1]),
    rtol=1e-4,
    atol=1e-6,
  )
  assert 0 < float(states[-1].aux["began"]["k"]) < 1


def test_k_trajectory_survives_checkpoint_resume(tmp_path):
  """6 steps in one go == 3 steps, stop, resume, 3 more, bit for bit: k_t, the learning-rate
  state and the parameters, with learning-rate decays on both sides of the resume."""
  config = smoke_config("began", train__checkpoint_every=3, **FAST)
  full = jax.device_get(train.train_and_evaluate(config, str(tmp_path / "full")))
  half = smoke_config("began", train__steps=3, **FAST)
  train.train_and_evaluate(half, str(tmp_path / "split"))
  resumed = jax.device_get(train.train_and_evaluate(config, str(tmp_path / "split")))
  chex.assert_trees_all_equal(resumed.aux["began"], full.aux["began"])
  chex.assert_trees_all_equal(resumed.params, full.params)
  assert 0 < float(full.aux["began"]["k"]) < 1
  assert float(full.aux["began"]["lr_scale"]) == 0.125


@pytest.mark.parametrize("size,skip", [(32, False), (32, True), (64, False), (64, True)])
def test_network_shapes(size, skip):
  config = smoke_config(
    "began", "smoke", model__skip=skip, model__width=4, model__hidden_dim=6, model__z_dim=5
  )
  nets = MODELS.get("began")(config.model.to_dict(), (size, size, 3))
  G, D = nets["generator"], nets["discriminator"]
  z, x = jnp.zeros((2, 5)), jnp.zeros((2, size, size, 3))
  g_vars = jax.eval_shape(lambda: G.init(jax.random.PRNGKey(0), z))
  d_vars = jax.eval_shape(lambda: D.init(jax.random.PRNGKey(0), x))
  assert jax.eval_shape(G.apply, g_vars, z).shape == (2, size, size, 3)
  out, inter = jax.eval_shape(functools.partial(D.apply, mutable=["intermediates"]), d_vars, x)
  assert out.shape == (2,)
  assert inter["intermediates"]["reconstruction"][0].shape == (2, size, size, 3)
  assert inter["intermediates"]["features"][0].shape == (2, 6)
  scales = {32: 3, 64: 4}[size]
  enc = d_vars["params"]["encoder"]
  # Filters n, 2n, 3n, ... per scale; an 8x8 map of scales·n filters feeds the embedding.
  assert [enc[f"scale{i}_conv1"]["conv"]["kernel"].shape[-1] for i in range(scales)] == [
    4 * (i + 1) for i in range(scales)
  ]
  assert enc["embed"]["kernel"].shape == (8 * 8 * 4 * scales, 6)
  assert f"scale{scales - 1}_down" not in enc
  g_params = g_vars["params"]
  assert g_params["project"]["kernel"].shape == (5, 8 * 8 * 4)
  # With skips, every scale after an upsampling sees [h, h0 upsampled]: 2n input channels.
  first = [g_params[f"scale{i}_conv0"]["conv"]["kernel"].shape[2] for i in range(scales)]
  assert first == [4] + [8 if skip else 4] * (scales - 1)
  assert jax.tree.structure(g_params) == jax.tree.structure(d_vars["params"]["decoder"])


def test_sizes_that_do_not_reach_8x8_are_rejected():
  config = smoke_config("began", "smoke", data__image_size=28)
  with pytest.raises(ConfigError, match=r"8·2\^k.*data.image_size"):
    spec_lib.build_spec(config)
  with pytest.raises(ConfigError, match=r"model.eta; valid: 1, 2"):
    spec_lib.build_spec(smoke_config("began", "smoke", model__eta=3))


def test_carry_schedule():
  assert [began_lib.carry_schedule(t, 16000, 16) for t in (0, 999, 1000, 15999, 16000, 20000)] == [
    (1.0, 1000),
    (1.0, 1000),
    (15 / 16, 2000),
    (1 / 16, 16000),
    (0.0, None),
    (0.0, None),
  ]
  carries, changes = zip(*[began_lib.carry_schedule(t, 10, 3) for t in range(0, 11, 2)])
  assert carries == pytest.approx([1.0, 1.0, 2 / 3, 2 / 3, 1 / 3, 0.0])
  assert changes == (4, 4, 7, 7, 10, None)


def test_vanishing_residual_spec_follows_the_step():
  config = _with_vanishing_residual(smoke_config("began"))
  for step, carry, rebuild in [(0, 1.0, 2), (3, 0.5, 4), (4, 0.0, None)]:
    spec = spec_lib.build_spec(config, step=step)
    assert spec.networks["generator"].module.carry == carry
    assert spec.networks["discriminator"].module.carry == carry
    assert spec.rebuild_at == rebuild
  with pytest.raises(ConfigError, match="no vanishing residuals"):
    spec_lib.build_spec(_with_vanishing_residual(smoke_config("dcgan")))


def _random_variables(module, *inputs):
  """Variables of `module` filled from numpy's generator (cheaper than compiling an init)."""
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
  return jax.tree.map(lambda s: 0.3 * rng.standard_normal(s.shape).astype(np.float32), shapes)


def test_vanishing_residual_mixes_same_shape_layers():
  """carry = 1: same-shape layers pass their input through (their weights do not matter);
  carry = c: such a layer outputs c·in + (1 - c)·ELU(conv(in))."""
  dec = lambda carry: models_lib.Decoder(image_size=8, channels=1, width=4, carry=carry)
  layer = models_lib._Layer(4, carry=0.25, kernel_init=jax.nn.initializers.lecun_normal())
  z = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
  h = np.linspace(-2, 2, 256, dtype=np.float32).reshape(1, 8, 8, 4)
  params = _random_variables(dec(0.0), z)["params"]
  perturbed = {**params, "scale0_conv1": jax.tree.map(lambda p: p + 1.0, params["scale0_conv1"])}
  variables = _random_variables(layer, h)

  @jax.jit
  def run():
    outputs = [
      (dec(c).apply({"params": params}, z), dec(c).apply({"params": perturbed}, z))
      for c in (1.0, 0.5)
    ]
    conv = variables["params"]["conv"]
    plain = jax.nn.elu(
      jax.lax.conv_general_dilated(
        h, conv["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
      + conv["bias"]
    )
    return outputs, layer.apply(variables, h), 0.25 * h + 0.75 * plain

  outputs, mixed, expected = run()
  assert [bool(np.allclose(a, b)) for a, b in outputs] == [True, False]
  chex.assert_trees_all_close(mixed, expected, rtol=1e-5, atol=1e-6)
