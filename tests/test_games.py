"""A game with two generators and two discriminators, written as a user's plug-in would be.

The game is a toy translation between two 2-D point domains, X ~ N(μ_x, I) and Y ~ N(μ_y, I):
G: X -> Y and F: Y -> X are trained jointly (one phase, one loss: LSGAN adversarial terms,
cycle-consistency L1 terms and a historical-averaging penalty), then D_X and D_Y jointly on an
image pool of G's and F's fakes. The pool and the historical average of G's and F's parameters
are a controller's state, filled after the "g" phase from the fakes that phase exports and
from the parameters, and read by the "d" phase's terms. Nothing in the library knows this game:
it is defined and registered here.
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import linen as nn

from gan_jax import sampling, train
from gan_jax import spec as spec_lib
from gan_jax.builder import GAMES, SpecBuilder
from gan_jax.core import parallel
from gan_jax.core.phases import Controller, Network, Phase
from gan_jax.core.random import named_key
from gan_jax.core.registry import read_section
from gan_jax.core.terms import Context, Term
from gan_jax.games.base import GENERATED, StaticQuantities, forward, init_networks

PyTree = Any

# Registration is global, so the name is one no library game or other test would pick.
GAME_NAME = "test_games.point_translation"
GENERATORS = ("G", "F")
DISCRIMINATORS = ("D_X", "D_Y")
POOL = "history"  # The controller's name: terms ask for its state by this name.


class MLP(nn.Module):
  """Dense layers with ReLU between them; the last layer is linear.

  Attributes:
    features: the width of each layer; a last width of 1 gives scores (B,).
  """

  features: tuple[int, ...]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    del train  # No BatchNorm or dropout: the same function in both modes.
    for i, width in enumerate(self.features):
      x = nn.Dense(width, name=f"dense_{i}")(x)
      if i < len(self.features) - 1:
        x = nn.relu(x)
    return x[:, 0] if self.features[-1] == 1 else x


@dataclasses.dataclass(frozen=True)
class PointTranslationGame(StaticQuantities):
  """G: X -> Y and F: Y -> X against D_X and D_Y, on unpaired batches of 2-D points.

  The batch holds domain X under "image" (the key the training step expects) and domain Y
  under "image_y", each (B, 2) float32.

  Named quantities:
    x, y                 the real points of X and Y (B, 2).
    fake_y, fake_x       G(x) and F(y).
    cycle_x, cycle_y     F(G(x)) and G(F(y)).
    d_x_real, d_x_fake   D_X(x) and D_X(fake_x), scores (B,).
    d_y_real, d_y_fake   D_Y(y) and D_Y(fake_y).
    apply                the function (network name, inputs) -> output, in training mode.
    params               the parameters being differentiated (name -> params when several).
    all_params           every network's parameters.
    outputs, step        earlier phases' exports and the iteration number.
    key                  a PRNG key of the term's own.
    <controller name>    each controller's state.

  Attributes:
    networks: name -> Network (G, F, D_X, D_Y).
    mu_x: the mean of domain X, from which `sample_inputs` draws.
  """

  networks: Mapping[str, Network]
  mu_x: tuple[float, float]

  STATIC_QUANTITIES = (
    "x",
    "y",
    "fake_y",
    "fake_x",
    "cycle_x",
    "cycle_y",
    "d_x_real",
    "d_x_fake",
    "d_y_real",
    "d_y_fake",
    "apply",
    "params",
    "all_params",
    "outputs",
    "step",
    "key",
  )

  def init_variables(
    self, key: jax.Array, batch: Mapping[str, jax.Array] | None = None
  ) -> dict[str, dict[str, PyTree]]:
    """Every network initialised on zeros of its example input (`batch` is not needed)."""
    del batch
    return init_networks(self.networks, key)

  def sample_inputs(self, key: jax.Array, n: int) -> jax.Array:
    """Points (n, 2) of domain X, the inputs G translates."""
    return jnp.asarray(self.mu_x, jnp.float32) + jax.random.normal(key, (n, 2))

  def sample(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], inputs: jax.Array
  ) -> dict[str, jax.Array]:
    """{"generated": G(x), "cycle": F(G(x))}, each (N, 2)."""
    model_state = dict(model_state)
    fake_y = forward(self.networks["G"].module, params["G"], model_state, "G", inputs, train=False)[
      "output"
    ]
    cycle = forward(self.networks["F"].module, params["F"], model_state, "F", fake_y, train=False)[
      "output"
    ]
    return {GENERATED: fake_y, "cycle": cycle}

  def context(
    self,
    *,
    networks: tuple[str, ...],
    params: Mapping[str, PyTree],
    model_state: dict[str, PyTree],
    batch: Mapping[str, jax.Array],
    aux: Mapping[str, PyTree],
    step: jax.Array,
    key: jax.Array,
    outputs: Mapping[str, Any] | None = None,
  ) -> Context:
    """The named quantities for one update of `networks` (see the class docstring)."""
    del key  # The game draws no noise: its inputs are the real points.
    ctx: Context

    def apply(name, inputs):
      return forward(
        self.networks[name].module, params[name], model_state, name, inputs, train=True
      )["output"]

    providers = {
      "x": lambda: batch["image"],
      "y": lambda: batch["image_y"],
      "fake_y": lambda: apply("G", ctx["x"]),
      "fake_x": lambda: apply("F", ctx["y"]),
      "cycle_x": lambda: apply("F", ctx["fake_y"]),
      "cycle_y": lambda: apply("G", ctx["fake_x"]),
      "d_x_real": lambda: apply("D_X", ctx["x"]),
      "d_x_fake": lambda: apply("D_X", ctx["fake_x"]),
      "d_y_real": lambda: apply("D_Y", ctx["y"]),
      "d_y_fake": lambda: apply("D_Y", ctx["fake_y"]),
      "apply": lambda: apply,
      "params": lambda: (
        params[networks[0]] if len(networks) == 1 else {n: params[n] for n in networks}
      ),
      "all_params": lambda: params,
      "outputs": lambda: dict(outputs or {}),
      "step": lambda: step,
    }
    providers.update({name: (lambda v=value: v) for name, value in aux.items()})
    ctx = Context(providers)
    return ctx


# Terms: pure functions of named quantities returning (scalar, metrics).


def generators_adversarial(*, d_x_fake, d_y_fake):
  """LSGAN generator loss of G and F together: both fakes should score 1."""
  loss_y = jnp.mean((d_y_fake - 1.0) ** 2)
  loss_x = jnp.mean((d_x_fake - 1.0) ** 2)
  return loss_y + loss_x, {"G": loss_y, "F": loss_x}


def cycle_consistency(*, x, y, cycle_x, cycle_y):
  """L1 between each domain's points and their round trip through both generators."""
  loss_x = jnp.mean(jnp.abs(cycle_x - x))
  loss_y = jnp.mean(jnp.abs(cycle_y - y))
  return loss_x + loss_y, {"x": loss_x, "y": loss_y}


def historical_average(*, params, history):
  """‖θ - θ̄‖² over G and F, θ̄ the running mean of their past parameters."""
  diff = jax.tree.map(lambda p, a: p - a, params, history["average"])
  return optax.tree.norm(diff, squared=True), {}


def _discriminator_lsgan(d_real, fake, critic):
  """LSGAN discriminator loss: real points score 1, pooled fakes 0."""
  return jnp.mean((d_real - 1.0) ** 2) + jnp.mean(critic(fake) ** 2), {}


def discriminator_x(*, d_x_real, apply, history):
  """D_X's LSGAN loss on real X points and the pool of F's fakes (`history` is the state of
  the controller named so)."""
  return _discriminator_lsgan(d_x_real, history["fake_x"], functools.partial(apply, "D_X"))


def discriminator_y(*, d_y_real, apply, history):
  """D_Y's LSGAN loss on real Y points and the pool of G's fakes."""
  return _discriminator_lsgan(d_y_real, history["fake_y"], functools.partial(apply, "D_Y"))


# The controller: a pool of the "g" phase's fakes (CycleGAN's image pool, here of points) and
# a running mean of G's and F's parameters, in TrainState.aux[POOL].


def pool_init(batch_size: int, *, params):
  """An empty pool of `batch_size` points per domain and θ̄ = the initial parameters."""
  zeros = jnp.zeros((batch_size, 2), jnp.float32)
  return {
    "fake_x": zeros,
    "fake_y": zeros,
    "filled": jnp.zeros((), bool),
    "average": {n: params[n] for n in GENERATORS},
    "count": jnp.ones((), jnp.int32),
  }


def pool_update(state, *, outputs, params, key):
  """Refreshes the pool from the "g" phase's exported fakes and θ̄ from the parameters.

  Each pool row takes the new fake with probability 1/2 (every row on the first call); θ̄
  absorbs the generators' parameters after this iteration's "g" update.
  """
  fresh_x, fresh_y = outputs["g/fake_x"], outputs["g/fake_y"]
  take = (jax.random.uniform(key, fresh_x.shape[:1]) < 0.5) | ~state["filled"]
  count = state["count"] + 1
  average = jax.tree.map(
    lambda a, p: a + (p - a) / count, state["average"], {n: params[n] for n in GENERATORS}
  )
  new = {
    "fake_x": jnp.where(take[:, None], fresh_x, state["fake_x"]),
    "fake_y": jnp.where(take[:, None], fresh_y, state["fake_y"]),
    "filled": jnp.ones((), bool),
    "average": average,
    "count": count,
  }
  return new, {
    "replaced": jnp.mean(take.astype(jnp.float32)),
    "pool_mean_y": jnp.mean(new["fake_y"]),
  }


def setup(builder: SpecBuilder) -> Callable[[SpecBuilder], PointTranslationGame]:
  """The point translation game from config section `translation`.

  Returns:
    finish(builder) -> PointTranslationGame.
  """
  cfg = read_section(builder.config, "translation")
  batch_size = read_section(builder.config, "train")["batch_size"]
  hidden = cfg["hidden"]
  for name in GENERATORS:
    builder.add_network(name, MLP((hidden, hidden, 2)), (1, 2))
  for name in DISCRIMINATORS:
    builder.add_network(name, MLP((hidden, 1)), (1, 2))
  builder.phases += [
    Phase(
      "g",
      GENERATORS,
      (
        Term("adv", generators_adversarial),
        Term("cycle", cycle_consistency, cfg["cycle_weight"]),
        Term("history", historical_average, cfg["history_weight"]),
      ),
      outputs=("fake_x", "fake_y"),
    ),
    Phase("d", DISCRIMINATORS, (Term("x", discriminator_x), Term("y", discriminator_y))),
  ]
  builder.controllers.append(
    Controller(POOL, functools.partial(pool_init, batch_size), pool_update, after="g")
  )
  builder.ema_networks = GENERATORS

  def finish(b: SpecBuilder) -> PointTranslationGame:
    return PointTranslationGame(networks=dict(b.networks), mu_x=tuple(cfg["mu_x"]))

  return finish


# A second import of this module (under another name) must not register the game twice. The
# names are listed first because `name in registry` raises ConfigError for an unknown name.
if GAME_NAME not in list(GAMES):
  GAMES.register(GAME_NAME)(setup)


# Test helpers.

MU_X, MU_Y = (-2.0, 1.0), (2.0, -1.0)
SGD_RATES = {"G": 0.05, "F": 0.02, "D_X": 0.1, "D_Y": 0.07}
CYCLE_WEIGHT, HISTORY_WEIGHT = 2.0, 0.5


def make_config(
  batch_size: int = 8, devices: int = 1, ema_decay: float = 0.0
) -> ml_collections.ConfigDict:
  """A config of the point translation game, with plain SGD so one step can be written out
  exactly; the learning rates differ per network so a mix-up of optimisers shows."""
  return ml_collections.ConfigDict(
    {
      "game": GAME_NAME,
      "seed": 0,
      "data": {"image_size": 1, "channels": 2},
      "optim": {
        name: {"name": "sgd", "learning_rate": rate, "momentum": 0.0}
        for name, rate in SGD_RATES.items()
      },
      "train": {
        "batch_size": batch_size,
        "n_critic": 1,
        "ema_decay": ema_decay,
        "devices": devices,
      },
      "translation": {
        "hidden": 8,
        "mu_x": MU_X,
        "cycle_weight": CYCLE_WEIGHT,
        "history_weight": HISTORY_WEIGHT,
      },
    }
  )


def make_spec(devices: int = 1, **config_args):
  config = make_config(devices=devices, **config_args)
  return spec_lib.build_spec(config, mesh=parallel.make_mesh(devices))


def point_batch(spec, seed: int = 0) -> dict[str, np.ndarray]:
  """{"image": X points, "image_y": Y points}, each (R, B, 2) float32."""
  rng = np.random.default_rng(seed)
  shape = (spec.batches_per_iteration, spec.batch_size, 2)
  return {
    "image": (rng.standard_normal(shape) + MU_X).astype(np.float32),
    "image_y": (rng.standard_normal(shape) + MU_Y).astype(np.float32),
  }


def _apply(spec, name, params, x):
  return spec.networks[name].module.apply({"params": params}, x, train=True)


def hand_written_iteration(spec, state, batch):
  """One iteration written out: one SGD step of G and F on their one summed loss, the
  pool update, one SGD step of D_X and D_Y on the pool.

  Returns:
    (params, pool state) after the iteration.
  """
  x, y = jnp.asarray(batch["image"][0]), jnp.asarray(batch["image_y"][0])
  pool = state.aux[POOL]
  phi_x, phi_y = state.params["D_X"], state.params["D_Y"]

  def g_loss(theta):
    fake_y = _apply(spec, "G", theta["G"], x)
    fake_x = _apply(spec, "F", theta["F"], y)
    adv = jnp.mean((_apply(spec, "D_Y", phi_y, fake_y) - 1) ** 2) + jnp.mean(
      (_apply(spec, "D_X", phi_x, fake_x) - 1) ** 2
    )
    cycle = jnp.mean(jnp.abs(_apply(spec, "F", theta["F"], fake_y) - x)) + jnp.mean(
      jnp.abs(_apply(spec, "G", theta["G"], fake_x) - y)
    )
    history = sum(
      jnp.sum((p - a) ** 2)
      for p, a in zip(jax.tree.leaves(theta), jax.tree.leaves(pool["average"]))
    )
    return adv + CYCLE_WEIGHT * cycle + HISTORY_WEIGHT * history, (fake_x, fake_y)

  theta = {n: state.params[n] for n in GENERATORS}
  grads, (fake_x, fake_y) = jax.grad(g_loss, has_aux=True)(theta)
  theta = {
    n: jax.tree.map(lambda p, g, n=n: p - SGD_RATES[n] * g, theta[n], grads[n]) for n in GENERATORS
  }

  # The controller's key, as the step derives it (gan_jax.core.step.train_iteration).
  rng = jax.random.fold_in(state.rng, state.step)
  key = named_key(rng, f"controller/{POOL}")
  take = (jax.random.uniform(key, (x.shape[0],)) < 0.5) | ~pool["filled"]
  pool_x = jnp.where(take[:, None], fake_x, pool["fake_x"])
  pool_y = jnp.where(take[:, None], fake_y, pool["fake_y"])
  count = pool["count"] + 1
  average = jax.tree.map(lambda a, p: a + (p - a) / count, pool["average"], theta)

  def d_loss(phi):
    return (
      jnp.mean((_apply(spec, "D_X", phi["D_X"], x) - 1) ** 2)
      + jnp.mean(_apply(spec, "D_X", phi["D_X"], pool_x) ** 2)
      + jnp.mean((_apply(spec, "D_Y", phi["D_Y"], y) - 1) ** 2)
      + jnp.mean(_apply(spec, "D_Y", phi["D_Y"], pool_y) ** 2)
    )

  phi = {"D_X": phi_x, "D_Y": phi_y}
  grads = jax.grad(d_loss)(phi)
  phi = {
    n: jax.tree.map(lambda p, g, n=n: p - SGD_RATES[n] * g, phi[n], grads[n])
    for n in DISCRIMINATORS
  }
  new_pool = {
    "fake_x": pool_x,
    "fake_y": pool_y,
    "filled": jnp.ones((), bool),
    "average": average,
    "count": count,
  }
  return {**theta, **phi}, new_pool


# Tests. Compilation dominates their time, so one module-wide run per device count serves
# them all.

ITERATIONS = 3
EMA_DECAY = 0.9


@dataclasses.dataclass
class Run:
  """Iterations of the project's compiled step on a mesh of `spec.mesh.size` devices.

  Attributes:
    spec: the RunSpec (its controller counts its own traces).
    states: host copies of the state before each iteration and after the last.
    metrics: host copies of each iteration's metrics.
    final: the last state, on the mesh.
    cache_size: programs the compiled step holds after all iterations.
    traces: times the iteration was traced.
  """

  spec: Any
  states: list[Any]
  metrics: list[dict[str, np.ndarray]]
  final: Any
  cache_size: int
  traces: int


def _compiled_run(devices: int) -> Run:
  spec = make_spec(devices=devices, ema_decay=EMA_DECAY)
  # The controller runs once per trace of the iteration, so counting its calls counts the
  # iteration's traces.
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
  for i in range(ITERATIONS):
    state, m = step(state, point_batch(spec, i))
    states.append(jax.device_get(state))
    metrics.append(jax.device_get(m))
  return Run(
    spec=spec,
    states=states,
    metrics=metrics,
    final=state,
    cache_size=step._cache_size(),  # pylint: disable=protected-access
    traces=len(traces),
  )


@pytest.fixture(scope="module")
def runs() -> dict[int, Run]:
  """device count -> Run, for 1 and 4 devices."""
  assert jax.device_count() == 4
  return {devices: _compiled_run(devices) for devices in (1, 4)}


def test_game_trains_with_joint_phases_and_a_controller(runs):
  """Finite metrics, per-network metrics of the joint phases, every network's parameters and
  the controller's state change."""
  run = runs[1]
  assert [p.networks for p in run.spec.phases] == [GENERATORS, DISCRIMINATORS]
  assert set(run.spec.networks) == set(GENERATORS + DISCRIMINATORS)
  start, end = run.states[0], run.states[-1]
  for metrics in run.metrics:
    assert all(np.isfinite(v) for v in metrics.values()), metrics
  metrics = run.metrics[-1]
  expected = {
    "g/loss",
    "g/adv",
    "g/adv/G",
    "g/adv/F",
    "g/cycle",
    "g/cycle/x",
    "g/history",
    "g/grad_norm",
    "g/param_norm",
    "d/loss",
    "d/x",
    "d/y",
    "d/grad_norm",
    f"{POOL}/replaced",
    f"{POOL}/pool_mean_y",
  }
  expected |= {
    f"{phase}/{name}/{m}"
    for phase, names in (("g", GENERATORS), ("d", DISCRIMINATORS))
    for name in names
    for m in ("grad_norm", "param_norm")
  }
  assert expected <= set(metrics), sorted(expected - set(metrics))
  # The joint norm is the norm over both networks' gradients.
  np.testing.assert_allclose(
    metrics["g/grad_norm"] ** 2,
    metrics["g/G/grad_norm"] ** 2 + metrics["g/F/grad_norm"] ** 2,
    rtol=1e-5,
  )
  assert int(end.step) == ITERATIONS
  for name in run.spec.networks:
    diff = optax.tree.norm(jax.tree.map(np.subtract, end.params[name], start.params[name]))
    assert float(diff) > 0, name
  pool = end.aux[POOL]
  assert bool(pool["filled"]) and not bool(start.aux[POOL]["filled"])
  assert int(pool["count"]) == ITERATIONS + 1
  assert np.abs(pool["fake_y"]).sum() > 0
  moved = optax.tree.norm(jax.tree.map(np.subtract, pool["average"], start.aux[POOL]["average"]))
  assert float(moved) > 0


def test_joint_phases_equal_hand_written_iteration(runs):
  """Each SGD iteration (the pool empty, then filled) equals the hand-written one: G and F
  step on the gradient of their one summed loss, each with its own learning rate, and D_X,
  D_Y on the pool the controller filled from the "g" phase's exports."""
  run = runs[1]
  reference = jax.jit(functools.partial(hand_written_iteration, run.spec))
  for i in range(ITERATIONS):
    before, after = run.states[i], run.states[i + 1]
    params, pool = reference(before, point_batch(run.spec, i))
    chex.assert_trees_all_close(after.params, params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(after.aux[POOL], pool, rtol=1e-5, atol=1e-6)
    ema = {
      n: jax.tree.map(lambda e, p: EMA_DECAY * e + (1 - EMA_DECAY) * p, before.ema[n], params[n])
      for n in GENERATORS
    }
    chex.assert_trees_all_close(after.ema, ema, rtol=1e-5, atol=1e-6)
  # From the second iteration on, the pool keeps some of its rows and θ̄ differs from θ, so
  # every part of the controller's state reaches the terms that read it.
  replaced = [float(m[f"{POOL}/replaced"]) for m in run.metrics]
  assert replaced[0] == 1.0 and all(0 < r < 1 for r in replaced[1:]), replaced
  history = [float(m["g/history"]) for m in run.metrics]
  assert history[0] == 0.0 and all(h > 0 for h in history[1:]), history


def test_data_parallel_equals_single_device(runs):
  """The compiled iterations on 4 devices equal those on 1 at the same global batch."""
  one, four = runs[1], runs[4]
  assert four.spec.mesh.size == 4
  assert len(four.final.params["G"]["dense_0"]["kernel"].sharding.device_set) == 4
  chex.assert_trees_all_close(four.states[-1], one.states[-1], rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(four.metrics, one.metrics, rtol=1e-5, atol=1e-6)


def test_iteration_compiles_once(runs):
  """Over several iterations with new batches the compiled step is traced and compiled once,
  on one device and on four."""
  for run in runs.values():
    assert run.traces == 1
    assert run.cache_size == 1


def test_sampling(runs):
  """make_sample_fn serves the game's "generated" panel: G (its EMA) on fixed points of
  domain X, in chunks rounded to the device count, the same on every call."""
  for run in runs.values():
    spec, state = run.spec, run.final
    sample_fn = sampling.make_sample_fn(spec, state, seed=3, batch_size=6)
    samples = sample_fn(10)
    assert samples.shape == (10, 2) and samples.dtype == np.float32
    assert np.all(np.isfinite(samples))
    np.testing.assert_array_equal(sample_fn(10), samples)
    inputs = sampling.fixed_inputs(spec, 3, 10, sampling.EVALUATION)
    expected = _apply(spec, "G", state.ema["G"], inputs)
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)
    panels = spec.game.sample(state.ema, state.model_state, inputs)
    assert set(panels) == {GENERATED, "cycle"}
    np.testing.assert_allclose(
      panels["cycle"], _apply(spec, "F", state.ema["F"], expected), rtol=1e-5, atol=1e-5
    )
