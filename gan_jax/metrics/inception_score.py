"""Inception score (Salimans et al. 2016, Sec. 4): exp(E_x KL(p(y|x) || p(y))), computed as
the reference code does, on `splits` consecutive parts of the samples (10 by default), giving
the mean and standard deviation over parts.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy


def _split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
  # The reference's parts: rows [i N / splits, (i + 1) N / splits).
  return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


@functools.partial(jax.jit, static_argnames=("splits",))
def split_scores(probs: jax.Array, splits: int = 10) -> jax.Array:
  """exp(mean_x KL(p(y|x) || p(y))) of each of `splits` parts of probs (N, K) -> (splits,).

  p(y) is each part's mean prediction. xlogy gives 0 log 0 = 0, so one-hot predictions are
  exact.
  """
  n = probs.shape[0]
  scores = []
  for lo, hi in _split_bounds(n, splits):
    p = probs[lo:hi]
    py = jnp.mean(p, axis=0, keepdims=True)
    kl = jnp.sum(xlogy(p, p) - xlogy(p, py), axis=1)
    scores.append(jnp.exp(jnp.mean(kl)))
  return jnp.stack(scores)


def inception_score(
  probs: np.ndarray | None = None, logits: np.ndarray | None = None, splits: int = 10
) -> tuple[float, float]:
  """Inception score (Salimans et al. 2016) of class predictions for N samples.

  Args:
    probs: (N, K) class probabilities (rows sum to 1), or
    logits: (N, K) logits, turned into probabilities with a softmax.
    splits: number of parts (the reference uses 10); N >= splits.

  Returns:
    (mean, std) over the parts; 1 for predictions that ignore the input, K for confident
    predictions spread evenly over K classes.
  """
  if (probs is None) == (logits is None):
    raise ValueError("pass exactly one of probs or logits")
  if logits is not None:
    probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  probs = jnp.asarray(probs, jnp.float32)
  if probs.ndim != 2 or probs.shape[0] < splits:
    raise ValueError(f"need predictions (N >= splits={splits}, K), got shape {probs.shape}")
  scores = np.asarray(split_scores(probs, splits), np.float64)
  return float(scores.mean()), float(scores.std())
