"""The unconditional GAN: G(z) against D, optionally with a network in front of D on real data.

Named quantities (images (B, H, W, C) in [-1, 1]; D's outputs are what its module returns:
scores (B,) for the DCGAN family, per-sample auto-encoder losses for BEGAN, or logits (B, K)):
  z              noise (B, Z) for this update.
  x_real         the real batch.
  x_real_view    what D sees of the real batch: x_real, or real_view(x_real) (the Tempered GAN
                 lens).
  x_fake         G(z).
  d_real_pass, d_fake_pass
                 D's forward pass on x_real_view and x_fake, run once: {"output": ...,
                 "features": ..., "reconstruction": ...} (what the module sows).
  d_real, d_fake D's output on x_real_view and on x_fake.
  d_real_plain   D(x_real) without the real view (equals d_real without a lens; monitoring).
  features_real, features_fake
                 D's last hidden features (B, F) on x_real_view and x_fake, from the same
                 passes as d_real and d_fake (feature matching costs no extra D pass).
  critic         the function images -> D(images) (gradient penalties); its passes write no
                 BatchNorm statistics.
  params         the parameters this update differentiates (one network's, or name -> params
                 when a phase updates several).
  all_params     every network's parameters (name -> params).
  adversary_params
                 D's parameters φ.
  adversary_loss the function (φ, terms=None) -> L_D(φ): D's own loss (the terms of the "d"
                 phase, or `terms`) on this context's x_real_view and x_fake, which keep their
                 dependence on the parameters being differentiated (AdvAs differentiates
                 ‖∇_φ L_D‖² w.r.t. θ through it).
  labels         integer labels (B,) when the data has them.
  outputs        quantities exported by earlier phases of the iteration ("<phase>/<name>").
  step           the iteration number (int32 scalar).
  key            a PRNG key of the term's own.
  <aux name>     the state of each controller, under the controller's name.
Only the quantities some term asks for are computed (the context is lazy and evaluated while
tracing), so an unused quantity costs nothing in the compiled step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.builder import GAMES, SpecBuilder
from gan_jax.core import parallel
from gan_jax.core.phases import Network, Phase
from gan_jax.core.random import NOISE_DISTRIBUTIONS, named_key, sample_noise
from gan_jax.core.registry import ConfigError, check_choice, read_section
from gan_jax.core.terms import Context, Term, evaluate_terms
from gan_jax.games.base import GENERATED, StaticQuantities, forward, init_networks
from gan_jax.images import images_to_float
from gan_jax.models import MODELS
from gan_jax.models.layers import VBN_REFERENCE
from gan_jax.objectives import OBJECTIVES

PyTree = Any


@dataclasses.dataclass(frozen=True)
class UnconditionalGame(StaticQuantities):
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

  STATIC_QUANTITIES = (
    "z",
    "x_real",
    "x_real_view",
    "x_fake",
    "d_real_pass",
    "d_fake_pass",
    "d_real",
    "d_fake",
    "d_real_plain",
    "critic",
    "features_real",
    "features_fake",
    "params",
    "all_params",
    "adversary_params",
    "adversary_loss",
    "labels",
    "outputs",
    "step",
    "key",
  )

  def init_variables(
    self, key: jax.Array, batch: Mapping[str, jax.Array] | None = None
  ) -> dict[str, dict[str, PyTree]]:
    """Every network initialised on zeros of its example input.

    A network with virtual batch normalisation (Salimans et al. 2016, Sec. 3.5) gets its
    reference batch here, chosen once and kept in its model_state (collection
    `vbn_reference`, checkpointed, so a resumed run continues with the same one): G's is
    noise from a key named after it, D's the first R images of `batch`, a real batch.

    Args:
      key: the initialisation key.
      batch: a real batch {"image": (N, H, W, C)} (uint8 or float in [-1, 1]), N >= R; needed
        only when D uses virtual batch normalisation.

    Raises:
      ConfigError: D needs a reference batch and `batch` is None or has fewer than R images.
    """
    variables = init_networks(self.networks, key)
    for name, net_vars in variables.items():
      if VBN_REFERENCE not in net_vars:
        continue
      shape = net_vars[VBN_REFERENCE]["input"].shape
      if name == self.generator:
        reference = sample_noise(named_key(key, f"{VBN_REFERENCE}/{name}"), shape, self.z_dist)
      else:
        if batch is None or batch["image"].shape[0] < shape[0]:
          got = "no batch" if batch is None else f"{batch['image'].shape[0]} images"
          raise ConfigError(
            f"virtual batch norm in {name!r} needs a real batch of >= {shape[0]} images "
            f"(model.vbn_reference_size) at initialisation; got {got}"
          )
        reference = images_to_float(jnp.asarray(batch["image"][: shape[0]]))
      net_vars[VBN_REFERENCE] = {"input": reference.astype(net_vars[VBN_REFERENCE]["input"].dtype)}
    return variables

  def run(
    self,
    name: str,
    params: Mapping[str, PyTree],
    model_state: dict[str, PyTree],
    x: jax.Array,
    *,
    train: bool,
    update_state: bool = True,
  ) -> dict[str, jax.Array]:
    """Network `name`'s forward pass as a dict (`gan_jax.games.base.forward`)."""
    return forward(
      self.networks[name].module,
      params[name],
      model_state,
      name,
      x,
      train=train,
      update_state=update_state,
    )

  def sample_inputs(self, key: jax.Array, n: int) -> jax.Array:
    """Noise z (n, Z) for `sample`."""
    return sample_noise(key, (n, self.z_dim), self.z_dist)

  def sample(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], inputs: jax.Array
  ) -> dict[str, jax.Array]:
    """{"generated": G(z)} in inference mode (BatchNorm running averages), (N, H, W, C)."""
    out = self.run(self.generator, params, dict(model_state), inputs, train=False)
    return {GENERATED: out["output"]}

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
    shared: Mapping[str, Any] | None = None,
  ) -> Context:
    """The named quantities for one update of `networks`.

    `params` holds the parameters being differentiated under their names; forward passes in
    training mode write new BatchNorm statistics into `model_state` (a dict, updated in place
    while tracing) in the order they are first needed. `shared` pre-sets quantities (used to
    re-evaluate D's loss at other D parameters on the same images).
    """
    ctx: Context

    def d_pass(x):
      return self.run(self.discriminator, params, model_state, x, train=True)

    def x_real_view():
      if self.real_view is None:
        return ctx["x_real"]
      return self.run(self.real_view, params, model_state, ctx["x_real"], train=True)["output"]

    def critic(x):
      return self.run(self.discriminator, params, model_state, x, train=True, update_state=False)[
        "output"
      ]

    def adversary_loss():
      loss_key = jax.random.fold_in(key, 1)

      def loss(phi, terms=None):
        # BatchNorm in D uses the batch statistics, as in D's own update; the statistics this
        # extra pass would write are dropped so they are not counted twice.
        sub = self.context(
          networks=(self.discriminator,),
          params={**params, self.discriminator: phi},
          model_state=dict(model_state),
          batch=batch,
          aux=aux,
          step=step,
          key=key,
          outputs=outputs,
          shared={n: ctx[n] for n in ("z", "x_real", "x_real_view", "x_fake")},
        )
        terms = self.adversary_terms if terms is None else terms
        (fixed, balanced), _ = evaluate_terms(terms, sub, loss_key, aux, "")
        return fixed + balanced

      return loss

    def labels():
      if "label" not in batch:
        raise ConfigError("a loss term asks for labels but the dataset has none")
      return batch["label"]

    providers = {
      "z": lambda: self.shard(self.sample_inputs(key, batch["image"].shape[0])),
      "x_real": lambda: batch["image"],
      "x_real_view": x_real_view,
      "x_fake": lambda: self.run(self.generator, params, model_state, ctx["z"], train=True)[
        "output"
      ],
      "d_real_pass": lambda: d_pass(ctx["x_real_view"]),
      "d_fake_pass": lambda: d_pass(ctx["x_fake"]),
      "d_real": lambda: ctx["d_real_pass"]["output"],
      "d_fake": lambda: ctx["d_fake_pass"]["output"],
      "d_real_plain": lambda: critic(ctx["x_real"]),
      "critic": lambda: critic,
      "features_real": lambda: ctx["d_real_pass"]["features"],
      "features_fake": lambda: ctx["d_fake_pass"]["features"],
      "params": lambda: (
        params[networks[0]] if len(networks) == 1 else {n: params[n] for n in networks}
      ),
      "all_params": lambda: params,
      "adversary_params": lambda: params[self.discriminator],
      "adversary_loss": adversary_loss,
      "labels": labels,
      "outputs": lambda: dict(outputs or {}),
      "step": lambda: step,
    }
    providers.update({name: (lambda v=value: v) for name, value in aux.items()})
    ctx = Context(providers, shared)
    return ctx


@GAMES.register("unconditional")
def setup(builder: SpecBuilder) -> Callable[[SpecBuilder], UnconditionalGame]:
  """The unconditional family from the config: networks (model.name), objective
  (objective.name), D's phase with n_critic repeats, then G's phase.

  Returns:
    finish(builder) -> UnconditionalGame, called after the stabilisers edited the builder.
  """
  config = builder.config
  train = read_section(config, "train")
  model_cfg = read_section(config, "model")
  objective_cfg = read_section(config, "objective")
  check_choice(model_cfg["z_dist"], NOISE_DISTRIBUTIONS, "model.z_dist")
  if model_cfg.get("vbn_reference_size", None) == 0:
    # Virtual batch norm's reference batch defaults to the training batch's size.
    model_cfg["vbn_reference_size"] = train["batch_size"]
  modules = MODELS.get(model_cfg["name"], "model.name")(
    model_cfg, builder.image_shape, dtype=builder.compute_dtype
  )
  objective = OBJECTIVES.get(objective_cfg["name"], "objective.name")(objective_cfg)
  builder.objective = objective
  builder.phases += [
    Phase(
      "d",
      "discriminator",
      objective.discriminator,
      repeats=train["n_critic"],
      constraint=objective.discriminator_constraint,
      update_scale=objective.update_scale,
    ),
    Phase(
      "g",
      "generator",
      objective.generator,
      update_scale=objective.update_scale,
      simultaneous=objective.simultaneous,
    ),
  ]
  builder.controllers += list(objective.controllers)
  builder.summaries += list(objective.summaries)
  builder.ema_networks = ("generator",)
  z_dim = model_cfg["z_dim"]
  example_shapes = {"generator": (1, z_dim), "discriminator": (1,) + builder.image_shape}
  for name, module in modules.items():
    builder.add_network(name, module, example_shapes[name])

  def finish(b: SpecBuilder) -> UnconditionalGame:
    return UnconditionalGame(
      networks=dict(b.networks),
      z_dim=z_dim,
      z_dist=model_cfg["z_dist"],
      real_view=b.real_view,
      adversary_terms=b.phase("d").terms,
      shard=parallel.batch_constraint(b.mesh),
    )

  return finish
