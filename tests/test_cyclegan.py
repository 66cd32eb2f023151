"""CycleGAN (Zhu et al. 2017): losses, the image history pool, networks, game, data, config."""

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.losses.cycle import cycle_consistency_loss, identity_loss
from gan_jax.stabilisers import image_pool

# ----------------------------------------------------------------------------- losses


def test_cycle_and_identity_losses_match_numpy():
  rng = np.random.default_rng(0)
  x, x_cyc, y, y_cyc = (rng.uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32) for _ in range(4))
  loss, metrics = cycle_consistency_loss(x_real=x, x_cycle=x_cyc, y_real=y, y_cycle=y_cyc)
  expected_x, expected_y = np.abs(x_cyc - x).mean(), np.abs(y_cyc - y).mean()
  np.testing.assert_allclose(loss, 10.0 * (expected_x + expected_y), rtol=1e-6)
  np.testing.assert_allclose(metrics["x"], expected_x, rtol=1e-6)
  np.testing.assert_allclose(metrics["y"], expected_y, rtol=1e-6)
  loss, metrics = identity_loss(
    x_real=x, x_identity=x_cyc, y_real=y, y_identity=y_cyc, cycle_weight=4.0, identity_weight=0.5
  )
  np.testing.assert_allclose(loss, 0.5 * 4.0 * (expected_x + expected_y), rtol=1e-6)
  np.testing.assert_allclose(metrics["y"], expected_y, rtol=1e-6)


# ----------------------------------------------------------------------------- image pool


def reference_pool(batches, key, pool_size):
  """The reference implementation's ImagePool.query in plain Python, with the draws of
  `image_pool.image_draws` in place of Python's `random`."""
  stored, returned_all = [], []
  for t, batch in enumerate(batches):
    query_key = jax.random.fold_in(key, t)
    returned = []
    for i, image in enumerate(batch):
      if len(stored) < pool_size:
        stored.append(image)
        returned.append(image)
        continue
      u, slot = (np.asarray(v) for v in image_draws_host(query_key, i, pool_size))
      if u > 0.5:
        returned.append(stored[int(slot)])
        stored[int(slot)] = image
      else:
        returned.append(image)
    returned_all.append(np.stack(returned))
  return stored, returned_all


def image_draws_host(key, index, pool_size):
  return jax.device_get(image_pool.image_draws(key, index, pool_size))


POOL_SIZE, POOL_BATCH, POOL_STEPS = 50, 4, 30  # 120 insertions: 50 fill, 70 swap.


def _pool_batches():
  rng = np.random.default_rng(1)
  # Distinct constant images, so which image came back is readable from its value.
  values = rng.permutation(POOL_BATCH * POOL_STEPS).astype(np.float32)
  return values.reshape(POOL_STEPS, POOL_BATCH, 1, 1, 1) * np.ones((1, 1, 2, 2, 1), np.float32)


def _run_pool(state, batches, key, start=0):
  query = jax.jit(image_pool.pool_query)
  returned = []
  for t, batch in enumerate(batches, start):
    state, metrics = query(state, jnp.asarray(batch), jax.random.fold_in(key, t))
    returned.append(np.asarray(state["query"]))
  return state, returned, metrics


def test_pool_matches_python_reference():
  key = jax.random.PRNGKey(7)
  batches = _pool_batches()
  state = image_pool.pool_init(POOL_SIZE, (2, 2, 1), POOL_BATCH)
  state, returned, metrics = _run_pool(state, batches, key)
  stored, expected = reference_pool(list(batches), key, POOL_SIZE)
  assert int(state["count"]) == POOL_SIZE and float(metrics["stored"]) == POOL_SIZE
  np.testing.assert_array_equal(np.asarray(state["images"]), np.stack(stored))
  for got, want in zip(returned, expected):
    np.testing.assert_array_equal(got, want)
  # The fill phase returns the new images; the swap phase returns some old ones, about half.
  fill = POOL_SIZE // POOL_BATCH
  np.testing.assert_array_equal(np.stack(returned[:fill]), batches[:fill])
  swapped = np.mean(np.stack(returned[fill + 1 :]) != batches[fill + 1 :])
  assert 0.3 < swapped < 0.7, swapped


def test_pool_resume_equals_uninterrupted():
  key = jax.random.PRNGKey(3)
  batches = _pool_batches()
  init = image_pool.pool_init(POOL_SIZE, (2, 2, 1), POOL_BATCH)
  full, _, _ = _run_pool(init, batches, key)
  half, _, _ = _run_pool(init, batches[:17], key)
  # A "checkpoint": the state through the host and back.
  half = jax.tree.map(jnp.asarray, jax.device_get(half))
  resumed, _, _ = _run_pool(half, batches[17:], key, start=17)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), jax.device_get(full))


# ----------------------------------------------------------------------------- networks


def _networks(size, channels, **cfg):
  from gan_jax.models import MODELS

  base = dict(
    width=8, n_blocks=2, discriminator_width=8, discriminator_layers=2, shared_encoder=False
  )
  return MODELS.get("cyclegan_resnet")({**base, **cfg}, (size, size, channels))


def _param_count(module, x):
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x))
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes["params"]))


def test_patchgan_receptive_field_and_output_size():
  from gan_jax.models import cyclegan as lib

  assert lib.receptive_field(lib.patch_layers(3)) == 70
  assert lib.receptive_field(lib.patch_layers(2)) == 34
  assert lib.receptive_field(lib.patch_layers(1)) == 16
  assert lib.patch_output_size(256, 3) == 30  # The reference's 30x30 score map.
  for size, layers in ((32, 2), (32, 1), (64, 3)):
    d = lib.PatchDiscriminator(width=4, n_layers=layers)
    x = jnp.zeros((2, size, size, 3))
    out = jax.eval_shape(lambda d=d, x=x: d.init_with_output(jax.random.PRNGKey(0), x)[0])
    side = lib.patch_output_size(size, layers)
    assert out.shape == (2, side, side), (size, layers, out.shape)


def test_parameter_counts_of_both_variants():
  """The 256 px networks have the reference's parameter counts (its printout: G 11.378 M,
  D 2.765 M); the shared-encoder variant holds one encoder and two decoders."""
  x = jnp.zeros((1, 256, 256, 3))
  cfg = dict(width=64, n_blocks=9, discriminator_width=64, discriminator_layers=3)
  nets = _networks(256, 3, **cfg)
  assert _param_count(nets["generator_xy"], x) == 11_378_179
  assert _param_count(nets["discriminator_x"], x) == 2_764_737
  shared = _networks(256, 3, shared_encoder=True, **cfg)
  assert sorted(shared) == [
    "decoder_x",
    "decoder_y",
    "discriminator_x",
    "discriminator_y",
    "encoder",
  ]
  h = jnp.zeros((1, 64, 64, 256))
  encoder, decoder = _param_count(shared["encoder"], x), _param_count(shared["decoder_x"], h)
  assert (encoder, decoder) == (5_099_136, 6_279_043)
  # One generator's worth of encoder plus two decoders: the encoder is held once.
  assert encoder + decoder == 11_378_179


def test_shared_encoder_gets_gradient_from_both_directions():
  nets = _networks(16, 1, shared_encoder=True)
  x, y = jax.random.uniform(jax.random.PRNGKey(1), (2, 2, 16, 16, 1), minval=-1.0)
  key = jax.random.PRNGKey(0)
  enc = nets["encoder"].init(key, x)["params"]
  feats = nets["encoder"].apply({"params": enc}, x)
  dec = {n: nets[n].init(key, feats)["params"] for n in ("decoder_x", "decoder_y")}

  def translate(e, images, decoder):
    h = nets["encoder"].apply({"params": e}, images)
    return nets[decoder].apply({"params": dec[decoder]}, h)

  # G(x) = decoder_y(encoder(x)) and F(y) = decoder_x(encoder(y)).
  grad_xy = jax.jit(jax.grad(lambda e: jnp.mean(jnp.abs(translate(e, x, "decoder_y") - y))))(enc)
  grad_yx = jax.jit(jax.grad(lambda e: jnp.mean(jnp.abs(translate(e, y, "decoder_x") - x))))(enc)
  for grads in (grad_xy, grad_yx):
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(n > 0 for n in norms), norms


# ----------------------------------------------------------------------------- game

import dataclasses  # noqa: E402
import functools  # noqa: E402

import chex  # noqa: E402
import pytest  # noqa: E402

from gan_jax import configs, train  # noqa: E402
from gan_jax import data as data_lib  # noqa: E402
from gan_jax import spec as spec_lib  # noqa: E402
from gan_jax.core import parallel  # noqa: E402
from gan_jax.games.base import GENERATED  # noqa: E402

GAME_STEPS = 3


def _config(**overrides):
  config = configs.get("cyclegan", "smoke")
  config.data.image_size = 8
  config.model.n_blocks = 1
  config.cycle.pool_size = 3
  for field, value in overrides.items():
    *sections, key = field.split(".")
    target = config
    for section in sections:
      target = target[section]
    target[key] = value
  return config


def _batch(spec, seed):
  rng = np.random.default_rng(seed)
  shape = (1, spec.batch_size) + spec.image_shape
  return {f"image_{v}": rng.integers(0, 256, shape, dtype=np.uint8) for v in ("x", "y")}


def _run(devices, **overrides):
  config = _config(**{"train.devices": devices, **overrides})
  spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(devices))
  traces = []
  controller = spec.controllers[0]

  @functools.wraps(controller.update)
  def counted(state, **inputs):
    traces.append(1)
    return controller.update(state, **inputs)

  spec = dataclasses.replace(spec, controllers=(dataclasses.replace(controller, update=counted),))
  step = train.compile_train_iteration(spec)
  state = train.init_state(spec, 0)
  states, metrics = [jax.device_get(state)], []
  for i in range(GAME_STEPS):
    state, m = step(state, _batch(spec, i))
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return dict(
    spec=spec, states=states, metrics=metrics, traces=len(traces), cache=step._cache_size()
  )  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def game_runs():
  assert jax.device_count() == 4
  # Plain SGD: the biases of convs followed by instance norm have a zero gradient up to
  # rounding, which Adam's normalisation would blow up to ±lr (differently per device count).
  sgd = {f"optim.{n}.name": "sgd" for n in configs.get("cyclegan").optim}
  sgd.update({f"optim.{n}.learning_rate": 0.05 for n in configs.get("cyclegan").optim})
  sgd.update({f"optim.{n}.lr_decay_start": 0 for n in configs.get("cyclegan").optim})
  return {devices: _run(devices, **sgd) for devices in (1, 4)}


def test_game_trains_and_compiles_once(game_runs):
  run = game_runs[1]
  spec = run["spec"]
  assert [p.name for p in spec.phases] == ["g", "d"]
  assert spec.phases[0].networks == ("generator_xy", "generator_yx")
  assert spec.phases[1].networks == ("discriminator_x", "discriminator_y")
  metrics = run["metrics"][-1]
  for name in ("g/adv_g", "g/adv_f", "g/cycle", "g/cycle/x", "g/identity", "d/adv_x", "d/adv_y"):
    assert name in metrics, sorted(metrics)
  for m in run["metrics"]:
    assert all(np.isfinite(v) for v in m.values())
  start, end = run["states"][0], run["states"][-1]
  for name in spec.networks:
    diff = sum(
      float(np.abs(a - b).sum())
      for a, b in zip(jax.tree.leaves(end.params[name]), jax.tree.leaves(start.params[name]))
    )
    assert diff > 0, name
  assert int(end.aux["image_pool"]["fake_x"]["count"]) == 3  # pool_size 3, batch 4: full
  assert run["traces"] == 1 and run["cache"] == 1
  assert game_runs[4]["traces"] == 1 and game_runs[4]["cache"] == 1


def test_discriminator_loss_is_halved_lsgan(game_runs):
  """d/adv_x is the library's LSGAN D loss (no ½); the phase weighs each direction by ½, as
  the reference's (loss_D_real + loss_D_fake) · 0.5."""
  m = game_runs[1]["metrics"][0]
  np.testing.assert_allclose(m["d/loss"], 0.5 * (m["d/adv_x"] + m["d/adv_y"]), rtol=1e-5)


def test_shared_encoder_variant_trains():
  config = _config(**{"model.shared_encoder": True, "train.devices": 1})
  spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
  assert spec.phases[0].networks == ("encoder", "decoder_x", "decoder_y")
  assert "generator_xy" not in spec.networks
  step = train.compile_train_iteration(spec)
  state = train.init_state(spec, 0)
  state, metrics = step(state, _batch(spec, 0))
  assert float(metrics["g/encoder/grad_norm"]) > 0
  assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
  # Sampling: the six translation panels.
  game = dataclasses.replace(
    spec.game,
    sample_images=lambda: {"x": _batch(spec, 1)["image_x"][0], "y": _batch(spec, 2)["image_y"][0]},
  )
  panels = game.sample(
    state.params, state.model_state, game.sample_inputs(jax.random.PRNGKey(0), 3)
  )
  assert list(panels) == ["x", GENERATED, "x_cycle", "y", "y_to_x", "y_cycle"]
  assert all(p.shape == (3,) + spec.image_shape for p in panels.values())


def test_unpaired_batches_are_deterministic_and_independent():
  cfg = _config().data.to_dict()
  source = data_lib.load_source(cfg, 0)
  assert isinstance(source, data_lib.UnpairedSource)
  batches = data_lib.make_batches(cfg, source, 4, 0)
  a, b = batches.iteration(5, 1), data_lib.make_batches(cfg, source, 4, 0).iteration(5, 1)
  assert set(a) == {"image_x", "image_y", "label_x", "label_y"}
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert a["image_x"].shape == (1, 4, 8, 8, 1)
  # Y's order is its own stream, not X's.
  assert not np.array_equal(batches.x.indices(0), batches.y.indices(0))


def test_data_parallel_equals_single_device(game_runs):
  """One compiled iteration on 4 devices equals one on 1 device at the same global batch, up
  to float32 rounding; the pool's choices are the same on both for every iteration.

  The tolerance is argued from a measurement: this test config's generators get gradients of
  norm ~500 at the first step (SGD at 0.05), and instance norm over 2x2 feature maps divides
  by tiny variances, so the rounding of the sharded reductions (~1e-7 relative) reaches the
  parameters as up to ~5e-6 after one iteration, and grows to ~3e-3 after three. With the
  state in float64 the same runs differ by at most 3e-15 after one iteration (1e-12 after
  three, 1e-11 at 16 px), and the pools by 0: the difference is rounding, not a different
  computation, so only the first iteration is compared, and with atol 2e-5.
  """
  one, four = game_runs[1], game_runs[4]
  assert four["spec"].mesh.size == 4
  chex.assert_trees_all_close(four["states"][1], one["states"][1], rtol=1e-5, atol=2e-5)
  chex.assert_trees_all_close(four["metrics"][0], one["metrics"][0], rtol=1e-5, atol=1e-6)
  # The pool's draws (which images it returns, how many it holds) match exactly.
  pool = [n for n in one["metrics"][0] if n.startswith("image_pool/")]
  assert any(n.endswith("/from_pool") for n in pool), sorted(one["metrics"][0])
  for m_one, m_four in zip(one["metrics"], four["metrics"]):
    for name in pool:
      assert m_four[name] == m_one[name], (name, m_one[name], m_four[name])
  assert any(float(m["image_pool/fake_x/from_pool"]) > 0 for m in one["metrics"])


# ----------------------------------------------------------------------------- evaluation

import json  # noqa: E402

from gan_jax.evaluation import eval_options  # noqa: E402
from gan_jax.evaluation.translation import TranslationEvaluator  # noqa: E402
from gan_jax.images import images_to_float, to_uint8  # noqa: E402
from gan_jax.metrics import classifiers, frechet  # noqa: E402
from gan_jax.metrics.features import FeatureExtractor  # noqa: E402


def _label_judge(name):
  """A judge reading the label an image encodes as its brightness (label = round(mean/25)):
  features are the four quadrants' means, logits (B, 1, 10) peak at the encoded label."""

  def fn(params, images):
    del params
    x = images.astype(jnp.float32)
    h, w = x.shape[1] // 2, x.shape[2] // 2
    quads = [x[:, i : i + h, j : j + w].mean((1, 2, 3)) for i in (0, h) for j in (0, w)]
    label = jnp.clip(jnp.round(x.mean((1, 2, 3)) / 25.0), 0, 9)
    logits = -jnp.abs(jnp.arange(10.0) - label[:, None])
    return {"features": jnp.stack(quads, -1), "logits": logits[:, None]}

  return FeatureExtractor(name, name, fn, {}, {"features": "features", "logits": "logits"}, 8)


def _encoded(labels, size=8, noise=0, seed=0):
  rng = np.random.default_rng(seed)
  base = np.asarray(labels, np.int64)[:, None, None, None] * 25
  jitter = rng.integers(-noise, noise + 1, (len(labels), size, size, 1)) if noise else 0
  return np.clip(base + jitter, 0, 255).astype(np.uint8)


def test_translation_metrics_match_a_hand_computation():
  labels = {"x": np.arange(20) % 10, "y": (np.arange(30) * 7) % 10}
  inputs = {v: _encoded(labels[v], noise=3, seed=i) for i, v in enumerate(("x", "y"))}
  judges = {v: _label_judge(f"judge_{v}") for v in ("x", "y")}
  real = {v: _encoded(np.arange(40) % 10, noise=10, seed=5 + i) for i, v in enumerate("xy")}
  reference = {}
  for v in ("x", "y"):
    out = judges[v](real[v])
    stats = frechet.gaussian_stats(out["features"])
    reference[v] = dict(out, mu=stats.mu, sigma=stats.sigma)
  evaluator = TranslationEvaluator(
    inputs, labels, judges, {"x": "classifier", "y": "classifier"}, reference
  )
  baseline = dict(evaluator.baseline)
  # The judges read brightness only, so untranslated images keep every label.
  assert {k: v for k, v in baseline.items() if "fid" not in k} == {
    "eval/classifier_accuracy_x": 1.0,
    "eval/classifier_accuracy_y": 1.0,
    "eval/label_preservation_xy_untranslated": 1.0,
    "eval/label_preservation_yx_untranslated": 1.0,
  }
  for s, t in (("x", "y"), ("y", "x")):
    stats = frechet.gaussian_stats(judges[t](inputs[s])["features"])
    expected = frechet.frechet_distance(
      stats.mu, stats.sigma, reference[t]["mu"], reference[t]["sigma"]
    )
    np.testing.assert_allclose(baseline[f"eval/classifier_fid_{t}_untranslated"], expected)

  # G keeps every label; F moves each label up by one (9 stays 9, it saturates).
  def g(images):
    return np.asarray(images_to_float(images))

  def f(images):
    return np.asarray(
      images_to_float(np.clip(images.astype(np.int64) + 25, 0, 255).astype(np.uint8))
    )

  results = evaluator({"y": g, "x": f}, step=0)
  assert results["eval/label_preservation_xy"] == 1.0
  assert results["eval/label_preservation_yx"] == np.mean(labels["y"] == 9)
  assert results["eval/translated_xy"] == 20 and results["eval/translated_yx"] == 30
  for t, s, fn in (("y", "x", g), ("x", "y", f)):
    # to_uint8(images_to_float(u)) is u again: the judge sees the translated uint8 images.
    features = judges[t](to_uint8(fn(inputs[s])))["features"]
    stats = frechet.gaussian_stats(features)
    expected = frechet.frechet_distance(
      stats.mu, stats.sigma, reference[t]["mu"], reference[t]["sigma"]
    )
    np.testing.assert_allclose(results[f"eval/classifier_fid_{t}"], expected, rtol=1e-6)
  assert evaluator.outputs() == {
    "eval/classifier_fid_y": "min",
    "eval/label_preservation_xy": "max",
    "eval/classifier_fid_x": "min",
    "eval/label_preservation_yx": "max",
  }

  # A domain without a classifier (photos) is judged by FID alone, in its judge's features
  # (Inception in practice); nothing is said about labels going into it.
  photos = TranslationEvaluator(
    inputs, labels, judges, {"x": "inception", "y": "classifier"}, reference
  )
  results = photos({"y": g, "x": f}, step=0)
  assert "eval/label_preservation_yx" not in results and "eval/classifier_fid_x" not in results
  assert results["eval/label_preservation_xy"] == 1.0
  features = judges["x"](to_uint8(f(inputs["y"])))["features"]
  stats = frechet.gaussian_stats(features)
  expected = frechet.frechet_distance(
    stats.mu, stats.sigma, reference["x"]["mu"], reference["x"]["sigma"]
  )
  np.testing.assert_allclose(results["eval/fid_x"], expected, rtol=1e-6)
  assert "eval/fid_x_untranslated" in photos.baseline
  assert photos.outputs() == {
    "eval/classifier_fid_y": "min",
    "eval/label_preservation_xy": "max",
    "eval/fid_x": "min",
  }


def test_translation_evaluation_in_a_training_run(tmp_path, monkeypatch):
  """A smoke run evaluates both directions every 3 steps; label preservation equals the
  classifiers applied by hand to the final state's translations."""
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  # Untrained classifiers are enough to check the wiring and the counting.
  for i, dataset in enumerate(("digits", "mnist")):
    params = classifiers.ConvNet().init(jax.random.PRNGKey(i), jnp.zeros((1, 16, 16, 1)))["params"]
    classifiers.save(dataset, params, {"image_size": 16, "test_accuracy": 0.0})
  config = configs.get("cyclegan", "smoke")
  config.train.devices = 1
  config.eval.every = 3
  config.eval.num_samples = 40
  config.eval.classifier_x = "digits"
  config.eval.classifier_y = "mnist"
  state = train.train_and_evaluate(config, str(tmp_path / "run"))
  records = [
    json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  ]
  evals = [r for r in records if "eval/label_preservation_xy" in r]
  assert [r["step"] for r in evals] == [3, 6]
  final = evals[-1]
  assert final["eval/translated_xy"] == 40 and final["eval/translated_yx"] == 40
  assert {"eval/classifier_fid_x", "eval/classifier_fid_y", "eval/classifier_accuracy_x"} <= set(
    final
  )

  spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
  evaluator = TranslationEvaluator.from_config(config, eval_options(config))
  for s, t, dataset in (("x", "y", "mnist"), ("y", "x", "digits")):
    translated = spec.game.translate(
      t, state.params, state.model_state, images_to_float(evaluator.inputs[s]), train=False
    )
    params, _ = classifiers.load(dataset)
    logits = classifiers.predict_logits(params, to_uint8(translated))
    expected = np.mean(logits.argmax(-1) == evaluator.labels[s])
    assert final[f"eval/label_preservation_{s}{t}"] == pytest.approx(expected, abs=1.0 / 40)

  # The evaluation CLI restores the last checkpoint and evaluates the run the same way.
  from gan_jax.cli import evaluate  # pylint: disable=g-import-not-at-top

  record = evaluate.evaluate_run(str(tmp_path / "run"))
  assert record["step"] == 6
  for name, value in final.items():
    if name.startswith("eval/"):
      assert record[name] == pytest.approx(value, rel=1e-6), name
