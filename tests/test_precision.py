"""Mixed precision (train.compute_dtype = "bfloat16", docs/precision.md): for every model family
a few bfloat16 steps train finitely, parameters, optimiser states and normalisation statistics
stay float32, the layers' activations are bfloat16, and the losses agree with float32's.

Tolerance of the loss comparison: both runs start from the same state (initialised by the
bfloat16 spec; its parameters are float32) on the same batch and keys, so the first
iteration's losses differ by bfloat16 rounding only. bfloat16 keeps 8 significant bits, so a
rounding is off by at most 2^-8 ≈ 0.4 %, and a loss is a batch mean of values that went
through a few rounded layers: measured, losses of magnitude > 0.1 differ by at most 0.3 %
relative, and the means of raw D scores near 0 (E d(x) ≈ 0.02 at initialisation, whose error
is that of the scores, not of their mean) by at most 6e-4 absolute. RTOL = 2e-2 and
ATOL = 2e-3 leave a margin of ~4x on the worst of them (26 % of the tolerance used) and still
fail on a wrong cast or a changed random draw, which move losses by far more.

One test per family runs everything (one bfloat16 compilation of the iteration, one float32
compilation of its losses alone, tiny smoke networks on one device), so the file stays fast.
"""

import concurrent.futures
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import spec as spec_lib
from gan_jax import train
from gan_jax.core import parallel
from gan_jax.core import step as step_lib
from gan_jax.core.registry import ConfigError
from gan_jax.core.terms import BALANCE
from tests.utils import random_batch, smoke_config

RTOL = 2e-2
ATOL = 2e-3
STEPS = 2
# Config -> overrides (each run is the smoke config on one device). WGAN-GP with the lens and
# AdvAs stands for wgan_gp, wgan_gp_lens and wgan_gp_advas: it runs the gradient penalty, the
# lens and AdvAs' nested gradients in one compilation; n_critic = 1 keeps that small (the
# repeats are the same code), as do one residual block and no identity loss in CycleGAN (the
# identity loss is two more passes of the same generators).
FAMILIES = {
  "dcgan": ("dcgan", {}),
  "wgan_gp+lens+advas": ("wgan_gp", {"stabilisers": "lens,advas", "train__n_critic": 1}),
  "began": ("began", {}),
  "improved_gan": ("improved_gan", {}),
  "semi_supervised": ("semi_supervised", {}),
  "cyclegan": ("cyclegan", {"model__n_blocks": 1, "cycle__identity_weight": 0.0}),
}
# Metrics that are not losses: gradient and parameter statistics, and the semi-supervised
# train error, a count that one near-tie among 8 examples moves by 1/8.
NOT_LOSSES = ("grad_norm", "param_norm", "balance_weight", "/error")


def _losses(spec, metrics):
  """The iteration's loss metrics: each term's value and metrics, each phase's total (but a
  total that holds AdvAs' adaptive weight, a ratio of gradient norms) and the controllers'
  states. Returned alone from a jitted iteration they let XLA drop the last phase's backward
  pass, which no loss needs."""
  balanced = {f"{p.name}/loss" for p in spec.phases if any(t.weight == BALANCE for t in p.terms)}
  return {k: v for k, v in metrics.items() if not k.endswith(NOT_LOSSES) and k not in balanced}


def _spec(family, dtype):
  name, overrides = FAMILIES[family]
  config = smoke_config(name, train__devices=1, train__compute_dtype=dtype, **overrides)
  return spec_lib.build_spec(config, mesh=parallel.make_mesh(1))


def _batch(spec, seed):
  """One iteration's batch in the layout of the spec's game."""
  rng = np.random.default_rng(seed)
  shape = (spec.batches_per_iteration, spec.batch_size) + spec.image_shape
  image = lambda: rng.integers(0, 256, shape, dtype=np.uint8)
  game = type(spec.game).__name__
  if game == "CycleGanGame":
    return {"image_x": image(), "image_y": image()}
  if game == "SemiSupervisedGame":
    labels = rng.integers(0, 10, shape[:2]).astype(np.int32)
    return {
      "image": image(),
      "image_g": image(),
      "labelled_image": image(),
      "labelled_label": labels,
    }
  return random_batch(spec, seed)


def _init_batch(spec):
  """A real batch for initialisation (VBN's reference, weight norm's data-dependent init)."""
  n = max(spec.init_examples or 0, spec.batch_size)
  images = np.random.default_rng(9).uniform(-1, 1, (n,) + spec.image_shape)
  return {"image": images.astype(np.float32)}


def _float_dtypes(tree):
  return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def _leaf_layer_outputs(intermediates: Mapping, path=()):
  """(path, output) of every module without submodules, from `capture_intermediates`."""
  children = {k: v for k, v in intermediates.items() if isinstance(v, Mapping)}
  if not children:
    yield "/".join(path), intermediates["__call__"][0]
  for key, child in children.items():
    yield from _leaf_layer_outputs(child, path + (key,))


def _sown(intermediates: Mapping, path=()):
  """(path, value) of everything a module sowed (features for feature matching, BEGAN's
  reconstruction), leaving out the captured `__call__` outputs."""
  for key, value in intermediates.items():
    if isinstance(value, Mapping):
      yield from _sown(value, path + (key,))
    elif key != "__call__":
      yield "/".join(path + (key,)), value[-1]


def _activations(spec, state, name):
  """Shapes and dtypes of network `name`'s output, its leaf layers' outputs and what it sows,
  in a training-mode pass on a batch of 2 (abstract: nothing is compiled)."""
  net = spec.networks[name]
  x = jax.ShapeDtypeStruct((2,) + net.example_input.shape[1:], net.example_input.dtype)
  variables = {"params": state.params[name], **state.model_state[name]}

  def apply(variables, x):
    return net.module.apply(
      variables,
      x,
      train=True,
      capture_intermediates=True,
      mutable=True,
      rngs={"noise": jax.random.PRNGKey(0)},
    )

  out, collections = jax.eval_shape(apply, variables, x)
  intermediates = collections["intermediates"]
  return out, dict(_leaf_layer_outputs(intermediates)), dict(_sown(intermediates))


def _check_activations(spec, state):
  """Every layer (conv, dense, normalisation, minibatch discrimination, weight norm) of every
  network returns bfloat16; what enters a loss (scores, logits, images, L(x), sown features)
  is float32."""
  for net in spec.networks:
    out, layers, sown = _activations(spec, state, net)
    assert layers, net
    not_bf16 = {path: x.dtype for path, x in layers.items() if x.dtype != jnp.bfloat16}
    assert not not_bf16, f"{net}: layers not in bfloat16: {not_bf16}"
    not_f32 = {path: x.dtype for path, x in sown.items() if x.dtype != jnp.float32}
    assert not not_f32, f"{net}: sown values not in float32: {not_f32}"
    if net != "encoder":  # a shared encoder's features go to a decoder, not to a loss
      assert out.dtype == jnp.float32, net


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bfloat16_trains_with_float32_state_and_matches_float32_losses(family):
  spec16, spec32 = _spec(family, "bfloat16"), _spec(family, "float32")
  assert spec16.compute_dtype == jnp.bfloat16 and spec32.compute_dtype == jnp.float32
  # Initialised by the bfloat16 networks (weight norm's data-dependent init runs a pass); both
  # runs start from this state, so their first losses differ by rounding only.
  state = train.init_state(spec16, 0, _init_batch(spec16))
  assert _float_dtypes((state.params, state.opt_state, state.model_state)) == {np.dtype(np.float32)}

  _check_activations(spec16, state)

  step16 = jax.jit(lambda s, b: step_lib.train_iteration(s, b, spec=spec16))
  losses32 = jax.jit(lambda s, b: _losses(spec32, step_lib.train_iteration(s, b, spec=spec32)[1]))
  # Compiling is most of this test's time: the two programs compile on two threads (XLA
  # releases the GIL while it compiles).
  lowered = [f.lower(state, _batch(spec16, 0)) for f in (step16, losses32)]
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    step16, losses32 = pool.map(lambda low: low.compile(), lowered)
  want = jax.device_get(losses32(state, _batch(spec32, 0)))
  new, metrics16 = state, []
  for i in range(STEPS):
    new, m = step16(new, _batch(spec16, i))
    metrics16.append(jax.device_get(m))

  assert int(new.step) == STEPS
  for m in metrics16:
    bad = sorted(k for k, v in m.items() if not np.isfinite(v))
    assert not bad, f"non-finite metrics: {bad}"
  # Parameters, optimiser states, BatchNorm statistics and EMAs stay float32.
  stores = (new.params, new.opt_state, new.model_state, new.ema)
  assert _float_dtypes(stores) == {np.dtype(np.float32)}
  moved = jax.tree.map(
    lambda a, b: np.abs(a - b).max(), *jax.device_get((new.params, state.params))
  )
  assert max(jax.tree.leaves(moved)) > 0

  # The first iteration's losses.
  got = _losses(spec16, metrics16[0])
  assert sorted(got) == sorted(want) and any(k.endswith("/loss") for k in want), sorted(want)
  for name in sorted(want):
    np.testing.assert_allclose(
      got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=f"{family}: {name}"
    )


def test_other_variants_compute_in_bfloat16_with_float32_parameters():
  """The layers no family above uses, checked abstractly (`jax.eval_shape`, nothing is
  compiled): layer norm in G and D, batch norm in the lens, virtual batch norm in D, the
  semi-supervised conv nets and CycleGAN's shared encoder."""
  variants = [
    ("wgan_gp", "smoke", {"model.generator_norm": "layer", "model.discriminator_norm": "layer"}),
    ("dcgan_lens", "smoke", {"lens.norm": "batch"}),
    ("improved_gan", "smoke", {"model.discriminator_norm": "virtual_batch"}),
    ("semi_supervised", "cifar10,smoke", {}),
    ("cyclegan", "smoke", {"model.shared_encoder": True}),
  ]
  for name, arg, overrides in variants:
    config = smoke_config(name, arg, train__devices=1, train__compute_dtype="bfloat16")
    for field, value in overrides.items():
      section, key = field.split(".")
      config[section][key] = value
    spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
    state = train.abstract_state(spec, 0, _init_batch(spec))
    stores = (state.params, state.opt_state, state.model_state)
    assert _float_dtypes(stores) == {np.dtype(np.float32)}, name
    _check_activations(spec, state)


def test_invalid_compute_dtype_is_one_line_naming_the_field_and_choices():
  config = smoke_config("dcgan", train__compute_dtype="float8")
  with pytest.raises(ConfigError) as info:
    spec_lib.validate_config(config)
  message = str(info.value)
  assert "\n" not in message
  assert "train.compute_dtype" in message and "float8" in message
  assert "'float32'" in message and "'bfloat16'" in message


def test_configs_without_the_field_run_in_float32():
  """A run's config.json from before the field existed builds a float32 spec."""
  config = smoke_config("dcgan")
  del config.train["compute_dtype"]
  assert spec_lib.compute_dtype(config) == jnp.float32
