"""The semi-supervised K+1 GAN (Salimans et al. 2016, Sec. 5): D is a K-class classifier whose
"generated" class has its logit fixed at 0, trained on labelled and unlabelled real data and on
G's samples; G is trained by feature matching (Sec. 3.1).

Per iteration (the released code's train_batch_disc, then train_batch_gen):
  phase "d"  D on L_supervised + w · L_unsupervised (`gan_jax.losses.semi_supervised`), from
             D's passes on the labelled batch, the unlabelled batch and G(z);
  phase "g"  G on feature matching of D's last hidden layer between a real batch and G(z')
             (fresh z', D after its update), the released code's second unlabelled batch
             ("image_g") or, with semi.generator_batch="shared", D's unlabelled batch.
With semi.unsupervised_weight = 0 the iteration is phase "d" on L_supervised alone (the
supervised baseline on the same labels); G is then not trained.

The batch layout is `gan_jax.data.semi_supervised`'s: "image" (unlabelled, for D), "image_g"
(unlabelled, for G), "labelled_image" and "labelled_label".

Named quantities (images (B, H, W, C) in [-1, 1], logits (B, K), features (B, F)):
  z                  noise (B, Z) of this update.
  x_fake             G(z), in training mode.
  x_labelled, labels the labelled batch and its integer labels (B,).
  x_unlabelled       the unlabelled batch of D's loss.
  x_real             the real batch of G's feature matching ("image_g" or x_unlabelled).
  d_labelled_pass, d_unlabelled_pass, d_real_pass, d_fake_pass
                     D's training-mode pass (noise/dropout on) on each batch, run once:
                     {"output": logits, "features": last hidden layer}; d_real_pass is
                     d_unlabelled_pass when the batches are shared.
  logits_labelled, logits_unlabelled, logits_fake
                     the logits of those passes.
  features_unlabelled, features_real, features_fake
                     D's last hidden features from the same passes (feature matching costs
                     no extra pass).
  params, all_params the parameters being differentiated / every network's.
  outputs, step      earlier phases' exports and the iteration number.
  key                a PRNG key of the term's own.
  <aux name>         each controller's state.

Randomness: the update's key is split by purpose name (`named_key`): "z" for the noise and
"noise/<pass>" for each pass's Gaussian noise or dropout, so every pass draws its own noise.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp

from gan_jax.builder import GAMES, SpecBuilder
from gan_jax.core import parallel
from gan_jax.core.phases import Network, Phase
from gan_jax.core.random import NOISE_DISTRIBUTIONS, named_key, sample_noise
from gan_jax.core.registry import ConfigError, check_choice, read_section
from gan_jax.core.terms import Context, Term
from gan_jax.games.base import GENERATED, StaticQuantities, forward, init_networks
from gan_jax.images import images_to_float
from gan_jax.losses.improved import FEATURE_DISTANCES, feature_matching_loss
from gan_jax.losses.semi_supervised import supervised_loss, unsupervised_loss
from gan_jax.models import MODELS

PyTree = Any
GENERATOR_BATCHES = ("separate", "shared")
# The PRNG collection of D's stochastic layers (`gan_jax.models.semi_supervised`).
NOISE = "noise"


@dataclasses.dataclass(frozen=True)
class SemiSupervisedGame(StaticQuantities):
  """G against a K-class D with a fixed-zero fake logit (see the module docstring).

  Attributes:
    networks: name -> Network ("generator", "discriminator").
    z_dim: noise dimension Z.
    z_dist: "uniform01" (the released code), "uniform" or "normal".
    generator_batch: "separate" (G matches features of "image_g") or "shared" (of D's
      unlabelled batch).
    shard: function constraining a batch-major array to the data-parallel sharding.
  """

  networks: Mapping[str, Network]
  z_dim: int
  z_dist: str = "uniform01"
  generator_batch: str = "separate"
  shard: Callable[[jax.Array], jax.Array] = lambda x: x

  GENERATOR = "generator"
  DISCRIMINATOR = "discriminator"
  STATIC_QUANTITIES = (
    "z",
    "x_fake",
    "x_labelled",
    "labels",
    "x_unlabelled",
    "x_real",
    "d_labelled_pass",
    "d_unlabelled_pass",
    "d_real_pass",
    "d_fake_pass",
    "logits_labelled",
    "logits_unlabelled",
    "logits_fake",
    "features_unlabelled",
    "features_real",
    "features_fake",
    "params",
    "all_params",
    "outputs",
    "step",
    "key",
  )

  def init_variables(
    self, key: jax.Array, batch: Mapping[str, jax.Array] | None = None
  ) -> dict[str, dict[str, PyTree]]:
    """Initialises G and D with weight normalisation's data-dependent initialisation
    (Salimans & Kingma 2016, Sec. 2.2; the released code's init_param).

    D is initialised on the real images `batch["image"]` (N, H, W, C) in [-1, 1] and G on N
    noise vectors, both in training mode, as the released code's init pass
    (`deterministic=False`): D's Gaussian noise and dropout are on, so the fixed scales g of
    its hidden layers normalise the noisy pre-activations (without the noise they come out
    larger, and D is less regularised than the paper's); G uses batch statistics.
    Without a batch, both get the plain initialisation (g = 1, b = 0) on zeros.
    """
    if batch is None:
      return init_networks(self.networks, key)
    images = jnp.asarray(batch["image"], jnp.float32)
    z = sample_noise(named_key(key, "init/z"), (images.shape[0], self.z_dim), self.z_dist)
    inputs = {self.GENERATOR: z, self.DISCRIMINATOR: images}
    out = {}
    for name, x in inputs.items():
      rngs = {"params": named_key(key, name), "noise": named_key(key, f"init/{name}/noise")}
      variables = self.networks[name].module.init(rngs, x, train=True, data_init=True)
      variables = flax.core.unfreeze(variables)
      variables.pop("intermediates", None)
      out[name] = variables
    return out

  def run(
    self,
    name: str,
    params: Mapping[str, PyTree],
    model_state: dict[str, PyTree],
    x: jax.Array,
    *,
    train: bool,
    key: jax.Array | None = None,
  ) -> dict[str, jax.Array]:
    """Network `name`'s forward pass as a dict (`gan_jax.games.base.forward`); `key` feeds
    its stochastic layers in training mode."""
    return forward(
      self.networks[name].module,
      params[name],
      model_state,
      name,
      x,
      train=train,
      rngs=None if key is None else {NOISE: key},
    )

  def sample_inputs(self, key: jax.Array, n: int) -> jax.Array:
    """Noise z (n, Z) for `sample`."""
    return sample_noise(key, (n, self.z_dim), self.z_dist)

  def sample(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], inputs: jax.Array
  ) -> dict[str, jax.Array]:
    """{"generated": G(z)} in inference mode (batch-norm running averages), (N, H, W, C)."""
    out = self.run(self.GENERATOR, params, dict(model_state), inputs, train=False)
    return {GENERATED: out["output"]}

  def predict(
    self, params: Mapping[str, PyTree], model_state: Mapping[str, PyTree], images: jax.Array
  ) -> jax.Array:
    """D's K logits (N, K) of images (N, H, W, C) in [-1, 1], in inference mode (no noise or
    dropout; the released code's test-time `deterministic=True`)."""
    out = self.run(self.DISCRIMINATOR, params, dict(model_state), images, train=False)
    return out["output"]

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
    ctx: Context

    def d_pass(name: str, images: jax.Array) -> dict[str, jax.Array]:
      return self.run(
        self.DISCRIMINATOR,
        params,
        model_state,
        images,
        train=True,
        key=named_key(key, f"noise/{name}"),
      )

    def x_real():
      if self.generator_batch == "shared":
        return ctx["x_unlabelled"]
      return images_to_float(batch["image_g"])

    def d_real_pass():
      if self.generator_batch == "shared":
        return ctx["d_unlabelled_pass"]
      return d_pass("real", ctx["x_real"])

    providers = {
      "z": lambda: self.shard(self.sample_inputs(named_key(key, "z"), batch["image"].shape[0])),
      "x_fake": lambda: self.run(self.GENERATOR, params, model_state, ctx["z"], train=True)[
        "output"
      ],
      "x_labelled": lambda: images_to_float(batch["labelled_image"]),
      "labels": lambda: batch["labelled_label"],
      "x_unlabelled": lambda: images_to_float(batch["image"]),
      "x_real": x_real,
      "d_labelled_pass": lambda: d_pass("labelled", ctx["x_labelled"]),
      "d_unlabelled_pass": lambda: d_pass("unlabelled", ctx["x_unlabelled"]),
      "d_real_pass": d_real_pass,
      "d_fake_pass": lambda: d_pass("fake", ctx["x_fake"]),
      "logits_labelled": lambda: ctx["d_labelled_pass"]["output"],
      "logits_unlabelled": lambda: ctx["d_unlabelled_pass"]["output"],
      "logits_fake": lambda: ctx["d_fake_pass"]["output"],
      "features_unlabelled": lambda: ctx["d_unlabelled_pass"]["features"],
      "features_real": lambda: ctx["d_real_pass"]["features"],
      "features_fake": lambda: ctx["d_fake_pass"]["features"],
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


@GAMES.register("semi_supervised")
def setup(builder: SpecBuilder) -> Callable[[SpecBuilder], SemiSupervisedGame]:
  """The semi-supervised K+1 GAN from the config sections model, semi and data.

  Returns:
    finish(builder) -> SemiSupervisedGame, called after the stabilisers edited the builder.
  """
  config = builder.config
  model_cfg = read_section(config, "model")
  semi = read_section(config, "semi")
  data = read_section(config, "data")
  if not data.get("num_labels"):
    raise ConfigError(
      "game 'semi_supervised' needs labels: set data.num_labels (e.g. 100) to the size of "
      "the labelled subset"
    )
  check_choice(model_cfg["z_dist"], NOISE_DISTRIBUTIONS, "model.z_dist")
  check_choice(semi["generator_batch"], GENERATOR_BATCHES, "semi.generator_batch")
  check_choice(semi["feature_distance"], FEATURE_DISTANCES, "semi.feature_distance")
  weight = semi["unsupervised_weight"]
  if weight < 0:
    raise ConfigError(f"semi.unsupervised_weight must be >= 0, got {weight}")
  if semi["init_examples"] < 0:
    raise ConfigError(f"semi.init_examples must be >= 0, got {semi['init_examples']}")
  modules = MODELS.get(model_cfg["name"], "model.name")(
    model_cfg, builder.image_shape, dtype=builder.compute_dtype
  )

  d_terms = [Term("sup", supervised_loss)]
  if weight > 0:
    unsup = functools.partial(unsupervised_loss, half_weights=semi["half_weights"])
    d_terms.append(Term("unsup", unsup, weight))
  builder.phases.append(Phase("d", SemiSupervisedGame.DISCRIMINATOR, tuple(d_terms)))
  if weight > 0:
    fm = functools.partial(feature_matching_loss, distance=semi["feature_distance"])
    builder.phases.append(Phase("g", SemiSupervisedGame.GENERATOR, (Term("fm", fm),)))
  # The released code evaluates with a running average of D's parameters (not of G's).
  builder.ema_networks = (SemiSupervisedGame.DISCRIMINATOR,)
  builder.init_examples = semi["init_examples"] or None
  z_dim = model_cfg["z_dim"]
  example_shapes = {
    SemiSupervisedGame.GENERATOR: (1, z_dim),
    SemiSupervisedGame.DISCRIMINATOR: (1,) + builder.image_shape,
  }
  for name, module in modules.items():
    builder.add_network(name, module, example_shapes[name])

  def finish(b: SpecBuilder) -> SemiSupervisedGame:
    return SemiSupervisedGame(
      networks=dict(b.networks),
      z_dim=z_dim,
      z_dist=model_cfg["z_dist"],
      generator_batch=semi["generator_batch"],
      shard=parallel.batch_constraint(b.mesh),
    )

  return finish
