"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017), G: X -> Y and F: Y -> X
against D_X and D_Y, as in the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
models/cycle_gan_model.py: optimize_parameters).

Per iteration:
  phase "g"      G and F jointly (one loss, each with its own optimiser) on
                   L_GAN(G, D_Y) + L_GAN(F, D_X) + λ_cyc L_cyc + λ_idt λ_cyc L_idt
                 (Eq. 3 plus the identity loss of Sec. 5.2); exports F(y) and G(x).
  "image_pool"   the history of fakes (`gan_jax.stabilisers.image_pool`, 50 per direction)
                 takes the exported fakes and returns the images D sees (no pool when
                 cycle.pool_size = 0: D sees this iteration's fakes).
  phase "d"      D_X and D_Y jointly on ½ L_D(D_X; x, pooled F(y)) + ½ L_D(D_Y; y, pooled G(x))
                 (the reference halves each D's loss "to slow down the rate at which D learns
                 relative to G").
The adversarial terms are the registered objective's (`objective.name`, LSGAN by default),
applied per direction by renaming the quantities they ask for (`per_direction`): D's terms
see d_real = D_V(v) and d_fake = D_V(pooled fake v), G's terms d_fake = D_V(fake v). With
LSGAN this is exactly the reference's loss: the library's LSGAN has no ½ factor
(`gan_jax.losses.adversarial`), so ½ (mean (D(v) − 1)² + mean D(fake)²) is the reference's
(loss_D_real + loss_D_fake) · 0.5, and G's mean (D(G(x)) − 1)² its loss_G_A.

With model.shared_encoder, one encoder is shared by both directions and each target domain has
its own decoder: G = decoder_y ∘ encoder and F = decoder_x ∘ encoder; phase "g" updates the
encoder and both decoders, so the encoder gets gradients from both directions.

Batches: {"image_x": (R, B, H, W, C), "image_y": (R, B, H, W, C)} (uint8 or float in
[-1, 1]), unpaired (`gan_jax.data.unpaired`); labels, if any, are not used in training.

Named quantities (images (B, H, W, C) in [-1, 1]; D's scores (B, h, w), one per patch):
  x_real, y_real        the real batches of X and Y.
  y_fake, x_fake        G(x) and F(y).
  x_cycle, y_cycle      F(G(x)) and G(F(y)).
  x_identity, y_identity
                        F(x) and G(y) (the identity loss).
  x_pooled, y_pooled    the fakes D_X and D_Y are trained on: the pool's answer to this
                        iteration's F(y) and G(x), or those fakes without a pool.
  d_x_real, d_x_fake, d_x_pooled, d_y_real, d_y_fake, d_y_pooled
                        D_X and D_Y on the images above.
  critic_x, critic_y    D_X and D_Y as functions of images (gradient penalties).
  params, all_params    the parameters being differentiated (name -> params) / every
                        network's.
  outputs, step         earlier phases' exports and the iteration number.
  key                   a PRNG key of the term's own.
  <aux name>            each controller's state.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.builder import GAMES, SpecBuilder
from gan_jax.core import parallel
from gan_jax.core.phases import Network, Phase
from gan_jax.core.registry import ConfigError, read_section
from gan_jax.core.terms import BALANCE, Context, Term, required_arguments
from gan_jax.games.base import GENERATED, StaticQuantities, forward, init_networks
from gan_jax.images import images_to_float
from gan_jax.losses.cycle import cycle_consistency_loss, identity_loss
from gan_jax.models import MODELS
from gan_jax.objectives import OBJECTIVES
from gan_jax.stabilisers.image_pool import pool_controller

PyTree = Any
POOL = "image_pool"
GENERATORS = ("generator_xy", "generator_yx")
SHARED_GENERATORS = ("encoder", "decoder_x", "decoder_y")
DISCRIMINATORS = ("discriminator_x", "discriminator_y")
DOMAINS = ("x", "y")


def per_direction(fn: Callable[..., Any], mapping: Mapping[str, str]) -> Callable[..., Any]:
  """`fn` (a term of the unconditional game) asking for renamed quantities.

  Args:
    fn: a pure term asking for quantities such as d_real, d_fake (and key).
    mapping: its quantity -> this game's quantity (e.g. d_fake -> d_y_pooled).

  Returns:
    A term asking for the mapped names (inspect.signature shows them, so `Term.inputs` and
    the spec's validation see them), calling `fn` with the original names.

  Raises:
    ConfigError: `fn` asks for a quantity the mapping does not cover.
  """
  names = required_arguments(fn)
  unknown = [n for n in names if n != "key" and n not in mapping]
  if unknown:
    raise ConfigError(
      f"an adversarial term of this objective asks for {unknown}, which the cyclegan game "
      f"does not provide per direction; it provides {sorted(mapping)}"
    )
  renamed = {n: mapping.get(n, n) for n in names}

  def term(**quantities):
    return fn(**{n: quantities[m] for n, m in renamed.items()})

  term.__signature__ = inspect.Signature(
    [inspect.Parameter(m, inspect.Parameter.KEYWORD_ONLY) for m in renamed.values()]
  )
  return term


def discriminator_mapping(v: str) -> dict[str, str]:
  """D_V's quantities: real images of V against the pooled fakes of V."""
  return {
    "d_real": f"d_{v}_real",
    "d_fake": f"d_{v}_pooled",
    "x_real_view": f"{v}_real",
    "x_fake": f"{v}_pooled",
    "critic": f"critic_{v}",
  }


def generator_mapping(v: str) -> dict[str, str]:
  """The generator producing domain V against D_V, on this iteration's fakes."""
  return {
    "d_real": f"d_{v}_real",
    "d_fake": f"d_{v}_fake",
    "x_real_view": f"{v}_real",
    "x_fake": f"{v}_fake",
    "critic": f"critic_{v}",
  }


@dataclasses.dataclass(frozen=True)
class CycleGanGame(StaticQuantities):
  """G: X -> Y and F: Y -> X against D_X and D_Y (see the module docstring).

  Attributes:
    networks: name -> Network: GENERATORS (or SHARED_GENERATORS) and DISCRIMINATORS.
    shared_encoder: G and F share one encoder ("encoder", "decoder_x", "decoder_y").
    pool: the image pool controller's name, or None (D sees the current fakes).
    sample_images: () -> {"x": uint8 (N, H, W, C), "y": uint8 (M, H, W, C)}, the images
      `sample_inputs` draws from (called on first use, then cached).
    shard: function constraining a batch-major array to the data-parallel sharding.
  """

  networks: Mapping[str, Network]
  shared_encoder: bool = False
  pool: str | None = POOL
  sample_images: Callable[[], Mapping[str, np.ndarray]] | None = None
  shard: Callable[[jax.Array], jax.Array] = lambda x: x

  STATIC_QUANTITIES = (
    "x_real",
    "y_real",
    "y_fake",
    "x_fake",
    "x_cycle",
    "y_cycle",
    "x_identity",
    "y_identity",
    "x_pooled",
    "y_pooled",
    "d_x_real",
    "d_x_fake",
    "d_x_pooled",
    "d_y_real",
    "d_y_fake",
    "d_y_pooled",
    "critic_x",
    "critic_y",
    "params",
    "all_params",
    "outputs",
    "step",
    "key",
  )

  def init_variables(
    self, key: jax.Array, batch: Mapping[str, jax.Array] | None = None
  ) -> dict[str, dict[str, PyTree]]:
    """Every network initialised on zeros of its example input, with a key named after it
    (`batch` is not needed)."""
    del batch
    return init_networks(self.networks, key)

  def run(self, name, params, model_state, x, *, train: bool, update_state: bool = True):
    """Network `name` on `x`, its output (`gan_jax.games.base.forward`)."""
    return forward(
      self.networks[name].module,
      params[name],
      model_state,
      name,
      x,
      train=train,
      update_state=update_state,
    )["output"]

  def translate(self, target: str, params, model_state, images, *, train: bool) -> jax.Array:
    """G (target "y") or F (target "x") on images (B, H, W, C) -> (B, H, W, C)."""
    if self.shared_encoder:
      h = self.run("encoder", params, model_state, images, train=train)
      return self.run(f"decoder_{target}", params, model_state, h, train=train)
    name = "generator_xy" if target == "y" else "generator_yx"
    return self.run(name, params, model_state, images, train=train)

  @functools.cached_property
  def _sample_bank(self) -> Mapping[str, np.ndarray]:
    if self.sample_images is None:
      raise ValueError("this CycleGanGame has no sample images (sample_images=None)")
    return self.sample_images()

  def sample_inputs(self, key: jax.Array, n: int) -> dict[str, np.ndarray]:
    """n real images of each domain, {"x", "y": (n, H, W, C) float32 in [-1, 1]}, drawn
    (with replacement when the bank is smaller) by `key` from `sample_images`."""
    out = {}
    for v, k in zip(DOMAINS, jax.random.split(key)):
      images = self._sample_bank[v]
      if n <= len(images):
        idx = jax.random.permutation(k, len(images))[:n]
      else:
        idx = jax.random.randint(k, (n,), 0, len(images))
      out[v] = np.asarray(images_to_float(jnp.asarray(images[np.asarray(idx)])), np.float32)
    return out

  def sample(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], inputs: PyTree
  ) -> dict[str, jax.Array]:
    """The translation panels, in inference mode, each (N, H, W, C) in [-1, 1]:
    x | G(x) ("generated") | F(G(x)) and y | F(y) | G(F(y))."""
    model_state = dict(model_state)
    x, y = inputs["x"], inputs["y"]
    fake_y = self.translate("y", params, model_state, x, train=False)
    fake_x = self.translate("x", params, model_state, y, train=False)
    return {
      "x": x,
      GENERATED: fake_y,
      "x_cycle": self.translate("x", params, model_state, fake_y, train=False),
      "y": y,
      "y_to_x": fake_x,
      "y_cycle": self.translate("y", params, model_state, fake_x, train=False),
    }

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
    """The named quantities for one update of `networks` (see the module docstring)."""
    del key  # The game draws no noise: its inputs are the real images.
    ctx: Context

    def translate(target, images):
      return self.translate(target, params, model_state, images, train=True)

    def discriminate(v, images, update_state=True):
      return self.run(
        f"discriminator_{v}", params, model_state, images, train=True, update_state=update_state
      )

    def pooled(v):
      if self.pool is None:
        return (outputs or {})[f"g/{v}_fake"]
      return aux[self.pool][f"fake_{v}"]["query"]

    other = {"x": "y", "y": "x"}
    providers = {}
    for v in DOMAINS:
      providers.update(
        {
          f"{v}_real": lambda v=v: images_to_float(batch[f"image_{v}"]),
          f"{v}_fake": lambda v=v: translate(v, ctx[f"{other[v]}_real"]),
          f"{v}_cycle": lambda v=v: translate(v, ctx[f"{other[v]}_fake"]),
          f"{v}_identity": lambda v=v: translate(v, ctx[f"{v}_real"]),
          f"{v}_pooled": lambda v=v: jax.lax.stop_gradient(pooled(v)),
          f"d_{v}_real": lambda v=v: discriminate(v, ctx[f"{v}_real"]),
          f"d_{v}_fake": lambda v=v: discriminate(v, ctx[f"{v}_fake"]),
          f"d_{v}_pooled": lambda v=v: discriminate(v, ctx[f"{v}_pooled"]),
          f"critic_{v}": lambda v=v: functools.partial(discriminate, v, update_state=False),
        }
      )
    providers.update(
      {
        "params": lambda: {n: params[n] for n in networks},
        "all_params": lambda: params,
        "outputs": lambda: dict(outputs or {}),
        "step": lambda: step,
      }
    )
    providers.update({name: (lambda v=value: v) for name, value in aux.items()})
    ctx = Context(providers)
    return ctx


def _fixed_weight(term: Term, objective_name: str) -> float:
  if callable(term.weight) or term.weight == BALANCE:
    raise ConfigError(
      f"objective {objective_name!r}: term {term.name!r} has a scheduled or balanced weight, "
      "which the cyclegan game does not support"
    )
  return float(term.weight)


@GAMES.register("cyclegan")
def setup(builder: SpecBuilder) -> Callable[[SpecBuilder], CycleGanGame]:
  """CycleGAN from the config sections model, objective, cycle and data.

  Returns:
    finish(builder) -> CycleGanGame, called after the stabilisers edited the builder.
  """
  config = builder.config
  model_cfg = read_section(config, "model")
  objective_cfg = read_section(config, "objective")
  cycle = read_section(config, "cycle")
  train = read_section(config, "train")
  if train["n_critic"] != 1:
    raise ConfigError(f"game 'cyclegan' needs train.n_critic = 1, got {train['n_critic']}")
  for field in ("weight", "identity_weight"):
    if cycle[field] < 0:
      raise ConfigError(f"cycle.{field} must be >= 0, got {cycle[field]}")
  if cycle["pool_size"] < 0:
    raise ConfigError(f"cycle.pool_size must be >= 0, got {cycle['pool_size']}")
  objective_name = objective_cfg["name"]
  objective = OBJECTIVES.get(objective_name, "objective.name")(objective_cfg)
  if objective.controllers or objective.simultaneous or objective.update_scale:
    raise ConfigError(
      f"objective {objective_name!r} needs controllers or simultaneous updates, which the "
      "cyclegan game does not support; use lsgan, minimax, non_saturating, wgan or wgan_gp"
    )
  builder.objective = objective
  modules = MODELS.get(model_cfg["name"], "model.name")(
    model_cfg, builder.image_shape, dtype=builder.compute_dtype
  )
  shared = bool(model_cfg["shared_encoder"])
  generators = SHARED_GENERATORS if shared else GENERATORS
  expected = set(generators + DISCRIMINATORS)
  if set(modules) != expected:
    raise ConfigError(
      f"model {model_cfg['name']!r} builds {sorted(modules)}; the cyclegan game needs "
      f"{sorted(expected)}"
    )

  # G: X -> Y is judged by D_Y ("adv_g"), F: Y -> X by D_X ("adv_f").
  g_terms = [
    Term(
      f"{t.name}_{player}",
      per_direction(t.fn, generator_mapping(v)),
      _fixed_weight(t, objective_name),
    )
    for t in objective.generator
    for player, v in (("g", "y"), ("f", "x"))
  ]
  g_terms.append(Term("cycle", functools.partial(cycle_consistency_loss, weight=cycle["weight"])))
  if cycle["identity_weight"] > 0:
    idt = functools.partial(
      identity_loss, cycle_weight=cycle["weight"], identity_weight=cycle["identity_weight"]
    )
    g_terms.append(Term("identity", idt))
  # Each D's loss halved, as the reference's backward_D_basic.
  d_terms = [
    Term(
      f"{t.name}_{v}",
      per_direction(t.fn, discriminator_mapping(v)),
      0.5 * _fixed_weight(t, objective_name),
    )
    for t in objective.discriminator
    for v in DOMAINS
  ]
  builder.phases += [
    Phase("g", generators, tuple(g_terms), outputs=("x_fake", "y_fake")),
    Phase("d", DISCRIMINATORS, tuple(d_terms), constraint=objective.discriminator_constraint),
  ]
  pool = None
  if cycle["pool_size"]:
    pool = POOL
    builder.controllers.append(
      pool_controller(
        POOL,
        cycle["pool_size"],
        builder.image_shape,
        train["batch_size"],
        {"fake_x": "g/x_fake", "fake_y": "g/y_fake"},
        after="g",
      )
    )
  size = builder.image_shape[0]
  features = (1, size // 4, size // 4, 4 * model_cfg["width"])
  for name, module in modules.items():
    shape = features if name.startswith("decoder") else (1,) + builder.image_shape
    builder.add_network(name, module, shape)

  from gan_jax.data import unpaired  # pylint: disable=g-import-not-at-top

  data_cfg = read_section(config, "data")
  sample_split = cycle.get("sample_split", "test")
  if data_cfg.get("source") == "unpaired":
    # The domains' fields (splits, jitter) fail here, at start-up, rather than at the first
    # read of the data.
    for v in DOMAINS:
      unpaired.domain_config(data_cfg, v)
      unpaired.domain_config(data_cfg, v, sample_split)

  def sample_images():
    return unpaired.load_domains(data_cfg, config.seed, split=sample_split)

  def finish(b: SpecBuilder) -> CycleGanGame:
    return CycleGanGame(
      networks=dict(b.networks),
      shared_encoder=shared,
      pool=pool,
      sample_images=sample_images,
      shard=parallel.batch_constraint(b.mesh),
    )

  return finish
