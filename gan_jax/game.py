"""The pieces a training iteration is assembled from: terms, phases, controllers and the game.

A training iteration (`gan_jax.step`) runs a sequence of **phases**. A phase updates one
network's parameters `repeats` times (D's n_critic updates are a phase with `repeats=n_critic`)
by the gradient of a weighted sum of **terms**. A term is a pure function with keyword-only
arguments returning `(scalar, metrics)`; the arguments without defaults are *named quantities*
that the **game** computes on demand (`AdversarialGame.context`), so a new loss or regulariser
plugs in by naming what it needs, without any change to the step. After the phases,
**controllers** update their state (k_t of BEGAN, the lens λ, running averages) in
`TrainState.aux`, from the iteration's metrics.

Named quantities of `AdversarialGame` (all images (B, H, W, C) in [-1, 1], scores (B,)):
  z            noise (B, Z) for this phase step.
  x_data       the real batch.
  x_real       what D sees of the real batch: x_data, or real_view(x_data) (the lens).
  x_fake       G(z).
  d_real       D(x_real), raw scores.
  d_fake       D(x_fake), raw scores.
  d_data       D(x_data), raw scores (differs from d_real only with a lens; for monitoring).
  critic       the function images -> D(images) (for gradient penalties).
  features_real, features_fake
               D's last hidden features (B, F) on x_real and x_fake (feature matching).
  params       the parameters this phase updates.
  all_params   every network's parameters (mapping name -> params).
  adversary_params
               D's parameters φ.
  adversary_loss
               the function (φ, terms=None) -> L_D(φ): D's own loss (the terms of the "d"
               phase, or `terms`) on this context's x_real and x_fake, which keep their
               dependence on the parameters being differentiated (AdvAs differentiates
               ‖∇_φ L_D‖² w.r.t. θ through it).
  labels       integer labels (B,) when the data has them.
  step         the iteration number (int32 scalar).
  key          a PRNG key of the term's own.
  <aux name>   the state of each controller, under the controller's name.
Only the quantities some term asks for are computed (the context is lazy and evaluated while
tracing), so an unused quantity costs nothing in the compiled step.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from gan_jax.registry import ConfigError

Metrics = dict[str, jax.Array]
PyTree = Any

BALANCE = "balance"


@dataclasses.dataclass(frozen=True)
class Term:
  """One loss term of a phase.

  Attributes:
    name: metric name of the term (e.g. "adv", "gp").
    fn: pure function with keyword-only arguments returning `(scalar, metrics)`.
    weight: a float; a function of `TrainState.aux` returning the weight (a controller's
      schedule, e.g. the lens λ(t)); or `BALANCE` to scale the term's gradient to the norm of
      the gradient of the other terms of the phase at every step, with no gradient through the
      scale (the hyperparameter-free λ of AdvAs).
  """
  name: str
  fn: Callable[..., tuple[jax.Array, Metrics]]
  weight: float | str | Callable[[Mapping[str, Any]], jax.Array] = 1.0

  @property
  def inputs(self) -> tuple[str, ...]:
    """The named quantities the term asks for: its parameters without a default."""
    params = inspect.signature(self.fn).parameters.values()
    return tuple(p.name for p in params if p.default is inspect.Parameter.empty)


@dataclasses.dataclass(frozen=True)
class Phase:
  """A block of updates of one network inside a training iteration.

  Attributes:
    name: metric prefix ("d", "g", "lens", ...).
    network: the network whose parameters are updated.
    terms: the terms whose weighted sum is minimised.
    repeats: number of consecutive updates (n_critic for D); each uses its own real batch.
    constraint: params -> params after every update (e.g. WGAN weight clipping).
    update_scale: aux -> scalar multiplying the optimiser's update (a learning-rate factor
      set by a controller, e.g. BEGAN's halving), or None.
    simultaneous: take the gradient at the other networks' parameters from the start of the
      iteration, not after the earlier phases' updates (simultaneous updates, as BEGAN's).
  """
  name: str
  network: str
  terms: tuple[Term, ...]
  repeats: int = 1
  constraint: Callable[[PyTree], PyTree] | None = None
  update_scale: Callable[[Mapping[str, Any]], jax.Array] | None = None
  simultaneous: bool = False


@dataclasses.dataclass(frozen=True)
class Controller:
  """State updated once per iteration after all phases, stored in `TrainState.aux[name]`.

  Attributes:
    name: key in `TrainState.aux`; terms can ask for the state under this name.
    init: () -> initial state (a pytree of arrays).
    update: (state, *, metrics, step) -> (new_state, metrics), pure; `metrics` holds the
      iteration's phase metrics, `step` the iteration number that just ran.
  """
  name: str
  init: Callable[[], PyTree]
  update: Callable[..., tuple[PyTree, Metrics]]


@dataclasses.dataclass(frozen=True)
class Network:
  """A network of the game with its optimiser.

  Attributes:
    module: the Flax module; called as module.apply(variables, x, train=...).
    optimizer: optax transformation updating its parameters.
    example_input: shape/dtype of one input batch, for initialisation.
  """
  module: nn.Module
  optimizer: Any
  example_input: jax.ShapeDtypeStruct


def term_weight(term: Term, aux: Mapping[str, PyTree]) -> jax.Array | float:
  """A term's fixed weight: a float, or a function of the controllers' state (lens λ)."""
  return term.weight(aux) if callable(term.weight) else term.weight


def evaluate_terms(terms: tuple[Term, ...], ctx: "Context", key: jax.Array,
                   aux: Mapping[str, PyTree], prefix: str):
  """Evaluates terms on a context.

  Returns:
    ((sum of fixed-weight terms, sum of balanced terms), metrics named "<prefix>/<term>...").
  """
  keys = jax.random.split(key, len(terms))
  fixed, balanced = jnp.zeros(()), jnp.zeros(())
  metrics = {}
  for term, term_key in zip(terms, keys):
    kwargs = {name: term_key if name == "key" else ctx[name] for name in term.inputs}
    value, term_metrics = term.fn(**kwargs)
    if term.weight == BALANCE:
      balanced = balanced + value
    else:
      fixed = fixed + term_weight(term, aux) * value
    metrics[f"{prefix}/{term.name}"] = value
    metrics.update({f"{prefix}/{term.name}/{k}": v for k, v in term_metrics.items()})
  return (fixed, balanced), metrics


class Context:
  """Named quantities computed on first use (while tracing) and cached."""

  def __init__(self, providers: Mapping[str, Callable[[], Any]],
               values: Mapping[str, Any] | None = None):
    self._providers = dict(providers)
    self._values: dict[str, Any] = dict(values or {})

  def __getitem__(self, name: str) -> Any:
    if name not in self._values:
      self._values[name] = self._providers[name]()
    return self._values[name]

  def __contains__(self, name: str) -> bool:
    return name in self._providers


def sample_noise(key: jax.Array, shape: tuple[int, ...], dist: str) -> jax.Array:
  """z ~ N(0, I) ("normal") or U[-1, 1] ("uniform", BEGAN)."""
  if dist == "normal":
    return jax.random.normal(key, shape)
  return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


@dataclasses.dataclass(frozen=True)
class AdversarialGame:
  """Generator vs discriminator, optionally with a network in front of D on real data.

  Attributes:
    networks: name -> Network.
    z_dim: noise dimension Z.
    z_dist: "normal" or "uniform".
    generator: name of G in `networks`.
    discriminator: name of D in `networks`.
    real_view: name of a network applied to real images before D sees them (Tempered GAN's
      lens), or None.
    adversary_terms: the terms of D's loss (for the `adversary_loss` quantity).
    shard: function constraining a batch-major array to the data-parallel sharding.
  """
  networks: Mapping[str, Network]
  z_dim: int
  z_dist: str = "normal"
  generator: str = "generator"
  discriminator: str = "discriminator"
  real_view: str | None = None
  adversary_terms: tuple[Term, ...] = ()
  shard: Callable[[jax.Array], jax.Array] = lambda x: x

  STATIC_QUANTITIES = ("z", "x_data", "x_real", "x_fake", "d_real", "d_fake", "d_data",
                       "critic", "features_real", "features_fake", "params", "all_params",
                       "adversary_params", "adversary_loss", "labels", "step", "key")

  def quantities(self, aux_names: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a term of this game may ask for."""
    return frozenset(self.STATIC_QUANTITIES) | frozenset(aux_names)

  def apply(self, name: str, params: Mapping[str, PyTree], model_state: dict[str, PyTree],
            x: jax.Array, *, train: bool, update_state: bool = True,
            capture: bool = False) -> tuple[jax.Array, PyTree]:
    """Runs network `name`; in training mode its new BatchNorm statistics go into `model_state`.

    Returns:
      (output, intermediates) where intermediates is {} unless `capture`.
    """
    module = self.networks[name].module
    variables = {"params": params[name], **model_state[name]}
    mutable = list(model_state[name]) if train else []
    if capture:
      mutable.append("intermediates")
    if not mutable:
      return module.apply(variables, x, train=train), {}
    out, updates = module.apply(variables, x, train=train, mutable=mutable)
    if train and update_state:
      model_state[name] = {k: updates[k] for k in model_state[name]}
    return out, updates.get("intermediates", {})

  def generate(self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree],
               z: jax.Array) -> jax.Array:
    """G(z) in inference mode (BatchNorm running averages): images (B, H, W, C)."""
    out, _ = self.apply(self.generator, params, dict(model_state), z, train=False)
    return out

  def context(self, *, network: str, params: Mapping[str, PyTree],
              model_state: dict[str, PyTree], batch: Mapping[str, jax.Array],
              aux: Mapping[str, PyTree], step: jax.Array, key: jax.Array,
              shared: Mapping[str, Any] | None = None) -> Context:
    """The named quantities for one update of `network`.

    `params` holds the parameters being differentiated under `network`; forward passes in
    training mode write new BatchNorm statistics into `model_state` (a dict, updated in place
    while tracing) in the order they are first needed. `shared` pre-sets quantities (used to
    re-evaluate D's loss at other D parameters on the same images).
    """
    ctx: Context

    def disc(x, capture=False):
      return self.apply(self.discriminator, params, model_state, x, train=True, capture=capture)

    def features(which):
      _, inter = disc(ctx[which], capture=True)
      return inter["features"][0]

    def x_real():
      if self.real_view is None:
        return ctx["x_data"]
      return self.apply(self.real_view, params, model_state, ctx["x_data"], train=True)[0]

    def critic(x):
      return self.apply(self.discriminator, params, model_state, x, train=True,
                        update_state=False)[0]

    def adversary_loss():
      loss_key = jax.random.fold_in(key, 1)

      def loss(phi, terms=None):
        # BatchNorm in D uses the batch statistics, as in D's own update; the statistics this
        # extra pass would write are dropped so they are not counted twice.
        sub = self.context(network=self.discriminator,
                           params={**params, self.discriminator: phi},
                           model_state=dict(model_state), batch=batch, aux=aux, step=step,
                           key=key, shared={n: ctx[n] for n in ("z", "x_data", "x_real",
                                                                 "x_fake")})
        terms = self.adversary_terms if terms is None else terms
        (fixed, balanced), _ = evaluate_terms(terms, sub, loss_key, aux, "")
        return fixed + balanced

      return loss

    def labels():
      if "label" not in batch:
        raise ConfigError("a loss term asks for labels but the dataset has none")
      return batch["label"]

    providers = {
        "z": lambda: self.shard(sample_noise(key, (batch["image"].shape[0], self.z_dim),
                                             self.z_dist)),
        "x_data": lambda: batch["image"],
        "x_real": x_real,
        "x_fake": lambda: self.apply(self.generator, params, model_state, ctx["z"],
                                     train=True)[0],
        "d_real": lambda: disc(ctx["x_real"])[0],
        "d_fake": lambda: disc(ctx["x_fake"])[0],
        "d_data": lambda: critic(ctx["x_data"]),
        "critic": lambda: critic,
        "features_real": lambda: features("x_real"),
        "features_fake": lambda: features("x_fake"),
        "params": lambda: params[network],
        "all_params": lambda: params,
        "adversary_params": lambda: params[self.discriminator],
        "adversary_loss": adversary_loss,
        "labels": labels,
        "step": lambda: step,
    }
    providers.update({name: (lambda v=value: v) for name, value in aux.items()})
    ctx = Context(providers, shared)
    return ctx
