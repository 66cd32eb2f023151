"""Stabilisers of Improved Techniques for Training GANs (Salimans et al. 2016).

  feature_matching      Sec. 3.1: G matches the mean of an intermediate layer of D on real
                        and generated data, instead of (or besides) its adversarial loss.
  historical_averaging  Sec. 3.3: each chosen player's cost gains w·‖θ − (1/t) Σ_{i≤t} θ[i]‖₂²;
                        the running mean is a controller's state in TrainState.aux.

The paper's other techniques are elsewhere: minibatch discrimination (Sec. 3.2) and virtual
batch normalisation (Sec. 3.5) are layers of the DCGAN networks (`gan_jax.models.layers`,
fields of the `model` config section) and one-sided label smoothing (Sec. 3.4) is
`objective.real_label`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.builder import STABILISERS, SpecBuilder, stabiliser_names
from gan_jax.core.phases import Controller
from gan_jax.core.registry import ConfigError, check_choice, field_reader
from gan_jax.core.terms import Term
from gan_jax.losses.improved import (
  FEATURE_DISTANCES,
  feature_matching_loss,
  historical_averaging_penalty,
)

HISTORICAL_AVERAGING = "historical_averaging"


# ----------------------------------------------------------------------------- feature matching


def _layer_of(d_pass: Mapping[str, jax.Array], layer: str) -> jax.Array:
  if layer not in d_pass:
    valid = sorted(k for k in d_pass if k != "output")
    raise ConfigError(
      f"invalid value {layer!r} for config field feature_matching.layer; D sows: "
      f"{', '.join(map(repr, valid))}"
    )
  return d_pass[layer]


def feature_matching_term(
  *,
  d_real_pass: Mapping[str, jax.Array],
  d_fake_pass: Mapping[str, jax.Array],
  layer: str = "features",
  distance: str = "squared_l2",
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Feature matching (Salimans et al. 2016, Sec. 3.1) on D's sown intermediate `layer`.

  The features come from D's passes on the real batch and on G(z) that give d_real and d_fake
  (the quantities `d_real_pass`, `d_fake_pass`): no pass of D of its own.

  Args:
    d_real_pass: D's pass on the real batch (as D sees it): {"output", <sown name>: (B, ...)}.
    d_fake_pass: D's pass on G(z).
    layer: the sown intermediate f ("features": D's last hidden features (B, F); "block<i>":
      block i's output (B, h, w, c)).
    distance: one of FEATURE_DISTANCES.
  """
  return feature_matching_loss(
    features_real=_layer_of(d_real_pass, layer),
    features_fake=_layer_of(d_fake_pass, layer),
    distance=distance,
  )


@STABILISERS.register("feature_matching")
def add_feature_matching(builder: SpecBuilder, cfg: Mapping[str, Any], step: int) -> None:
  """Adds feature matching to G's phase (config section `feature_matching`).

  With `replace_adversarial` G's adversarial term is dropped, so G minimises feature matching
  alone, as in the paper's Sec. 3.1 ("a new objective for the generator"); otherwise it is
  added to the adversarial loss with weight `weight`.
  """
  del step  # the same at every step
  get = field_reader(cfg, "feature_matching")
  distance = check_choice(get("distance"), FEATURE_DISTANCES, "feature_matching.distance")
  layer = str(get("layer"))
  fn = functools.partial(feature_matching_term, layer=layer, distance=distance)
  term = Term("feature_matching", fn, weight=float(get("weight")))
  if get("replace_adversarial"):
    kept = tuple(t for t in builder.phase("g").terms if t.name != "adv")
    builder.update_phase("g", terms=kept + (term,))
  else:
    builder.add_terms("g", term)


# ----------------------------------------------------------------------------- historical avg


def _running_mean_init(*, params, networks: tuple[str, ...]):
  """θ_0 as the first entry of each network's history: mean θ_0, count 1."""
  return {
    "count": jnp.ones((), jnp.float32),
    "mean": {n: jax.tree.map(lambda p: p.astype(jnp.float32), params[n]) for n in networks},
  }


def _running_mean_update(state, *, params, networks: tuple[str, ...]):
  """Adds the parameters after this iteration's updates to each network's running mean."""
  count = state["count"] + 1.0
  mean = {
    n: jax.tree.map(lambda m, p: m + (p - m) / count, state["mean"][n], params[n]) for n in networks
  }
  return {"count": count, "mean": mean}, {"count": count}


def historical_average_controller(networks: tuple[str, ...]) -> Controller:
  """The running means of historical averaging, `TrainState.aux["historical_averaging"]`.

  State: {"count": t + 1, "mean": {network: (1/(t+1)) Σ_{i=0}^{t} θ_i}} after t completed
  iterations, where θ_0 is the initial parameters and θ_i those after iteration i (D's after
  all its n_critic updates). It is updated once per iteration, after every phase, so
  iteration t's terms see the mean of θ_0 … θ_t: every value the parameters have had,
  including the current θ_t from which the iteration starts (the paper's (1/t) Σ_{i=1}^{t}
  θ[i] with its time i counted from 1).
  """
  return Controller(
    name=HISTORICAL_AVERAGING,
    init=lambda *, params: _running_mean_init(params=params, networks=networks),
    update=lambda state, *, params: _running_mean_update(state, params=params, networks=networks),
  )


def _historical_term(network: str):

  def historical_averaging(*, all_params, historical_averaging):
    return historical_averaging_penalty(
      params=all_params[network], average=historical_averaging["mean"][network]
    )

  return historical_averaging


@STABILISERS.register(HISTORICAL_AVERAGING)
def add_historical_averaging(builder: SpecBuilder, cfg: Mapping[str, Any], step: int) -> None:
  """Adds w_n·‖θ_n − mean θ_n‖₂² to the phase updating each chosen network n and the
  controller keeping the means (config section `historical_averaging`: `networks`, a
  comma-separated list, and a field `<network>_weight` for each)."""
  del step  # the same at every step
  get = field_reader(cfg, HISTORICAL_AVERAGING)
  networks = stabiliser_names(str(get("networks")))
  if not networks:
    raise ConfigError("historical_averaging.networks names no network")
  for name in networks:
    check_choice(name, tuple(builder.networks), "historical_averaging.networks")
    phases = [p.name for p in builder.phases if name in p.networks]
    if len(phases) != 1:
      raise ConfigError(
        f"historical_averaging: network {name!r} is updated by {len(phases)} phases "
        f"({phases}); it needs exactly one"
      )
    weight = float(get(f"{name}_weight"))
    builder.add_terms(phases[0], Term(HISTORICAL_AVERAGING, _historical_term(name), weight=weight))
  builder.controllers.append(historical_average_controller(networks))
