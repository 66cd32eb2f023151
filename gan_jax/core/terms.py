"""Loss terms and the lazy context of named quantities they are evaluated on.

A **term** is a pure function with keyword-only arguments returning `(scalar, metrics)`. Its
arguments without a default are *named quantities* (`x_fake`, `d_real`, `critic`, ...) that
the game computes on demand; arguments with a default are hyperparameters, bound from the
config with `functools.partial`. A new loss or regulariser therefore plugs in by naming what
it needs: nothing in the training step changes.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]
PyTree = Any

BALANCE = "balance"


def required_arguments(fn: Callable[..., Any]) -> tuple[str, ...]:
  """The keyword arguments of `fn` without a default: the quantities it asks for."""
  params = inspect.signature(fn).parameters.values()
  return tuple(
    p.name
    for p in params
    if p.default is inspect.Parameter.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
  )


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
    return required_arguments(self.fn)


def term_weight(term: Term, aux: Mapping[str, PyTree]) -> jax.Array | float:
  """A term's fixed weight: a float, or a function of the controllers' state (lens λ)."""
  return term.weight(aux) if callable(term.weight) else term.weight


class Context:
  """Named quantities computed on first use (while tracing) and cached.

  Args:
    providers: name -> zero-argument function computing the quantity.
    values: quantities known in advance (they take precedence over providers).
  """

  def __init__(
    self, providers: Mapping[str, Callable[[], Any]], values: Mapping[str, Any] | None = None
  ):
    self._providers = dict(providers)
    self._values: dict[str, Any] = dict(values or {})

  def __getitem__(self, name: str) -> Any:
    if name not in self._values:
      self._values[name] = self._providers[name]()
    return self._values[name]

  def __contains__(self, name: str) -> bool:
    return name in self._providers or name in self._values


def evaluate_terms(
  terms: tuple[Term, ...], ctx: Context, key: jax.Array, aux: Mapping[str, PyTree], prefix: str
):
  """Evaluates terms on a context; each term gets its own key (split from `key`).

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
