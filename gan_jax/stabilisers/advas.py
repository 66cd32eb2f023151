"""AdvAs, the Adversary's Assistant: a penalty on G from the norm of D's training gradient.

r(θ, φ) = ‖∇_φ L_adv(θ, φ)‖₂², the squared norm of the gradient D is trained on, evaluated at
the current φ; G minimises L_gen + λ·r. ∇_θ r is a gradient of a gradient (jax.grad of a
function containing jax.grad). λ is fixed, or chosen at every step as
λ = ‖∇_θ L_gen‖ / ‖∇_θ r‖ with no gradient through λ (the hyperparameter-free version).

D's BatchNorm layers, if any, use the batch statistics in the penalty pass, as in D's own
update: r is the norm of the gradient D actually follows. The running statistics that pass
would write are discarded, so D's statistics are not updated twice per G step.

Precision (train.compute_dtype = "bfloat16", docs/precision.md): ∇_φ L_adv is taken w.r.t.
the float32 parameters φ, so it is a float32 tree (each layer casts φ to the compute dtype,
and the transpose of that cast returns the cotangent as float32), and r, a sum of squares over
all of D's parameters, and the adaptive λ's norms are accumulated in float32. The nested
passes through D and G run in the compute dtype, as D's own update does: that is the gradient
D actually follows, bfloat16's float32 exponent range keeps the second-order terms from
underflowing, and its per-element rounding (≤ 0.4 %) moves r about as much as it moves the
losses (tests/test_precision.py compares r with float32's to the losses' tolerance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gan_jax.builder import STABILISERS, SpecBuilder
from gan_jax.core.registry import check_choice, field_reader
from gan_jax.core.terms import BALANCE, Term


def adversary_gradient_norm(
  *, adversary_loss: Callable[..., jax.Array], adversary_params: Any, terms=None
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """r(θ, φ) = ‖∇_φ L_adv(θ, φ)‖₂² (AdvAs, Eq. 5).

  Args:
    adversary_loss: φ -> D's loss on the current real and generated images.
    adversary_params: φ.
    terms: D's loss terms to use (default: all of them).
  """
  grads = jax.grad(lambda phi: adversary_loss(phi, terms))(adversary_params)
  # φ is float32, so are these gradients: the sum of squares over every parameter of D is
  # accumulated in float32 (at least: the cast is a no-op for float32 and wider parameters,
  # and raises narrower ones).
  grads = jax.tree.map(lambda g: g.astype(jnp.promote_types(g.dtype, jnp.float32)), grads)
  return optax.tree.norm(grads, squared=True), {}


@STABILISERS.register("advas")
def add_advas(builder: SpecBuilder, cfg: Mapping[str, Any], step: int) -> None:
  """Adds r to G's loss (config section `advas`)."""
  del step
  get = field_reader(cfg, "advas")
  which = check_choice(get("adversary_terms"), ("all", "adversarial"), "advas.adversary_terms")
  d_terms = builder.phase("d").terms
  terms = d_terms if which == "all" else tuple(t for t in d_terms if t.name == "adv")
  weight = BALANCE if get("adaptive") else float(get("weight"))

  def advas(*, adversary_loss, adversary_params):
    return adversary_gradient_norm(
      adversary_loss=adversary_loss, adversary_params=adversary_params, terms=terms
    )

  builder.add_terms("g", Term("advas", advas, weight=weight))
