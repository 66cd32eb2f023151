"""Losses of the semi-supervised K+1 GAN (Salimans et al. 2016, Sec. 5) as pure functions.

D is a classifier with K logits l(x) = (l_1(x), ..., l_K(x)) (B, K). The (K+1)-th class,
"generated", has its logit fixed at 0 (the softmax over K+1 logits is over-parametrised, so
fixing one logit loses nothing), hence with Z(x) = Σ_k exp(l_k(x)) and
s(x) = log Z(x) = logsumexp_k l_k(x):

  p(y = k | x, y ≤ K) = softmax(l(x))_k,      D(x) = p(y ≤ K | x) = Z(x) / (Z(x) + 1) = σ(s(x)).

Every loss takes keyword-only arguments and returns `(scalar, metrics)`; arguments without a
default are named quantities of the game (`gan_jax.games.semi_supervised`), the others
hyperparameters bound from the config.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


def real_log_mass(logits: jax.Array) -> jax.Array:
  """s(x) = log Z(x) = logsumexp_k l_k(x) (B,) of logits (B, K) (Sec. 5)."""
  return jax.nn.logsumexp(logits, axis=-1)


def real_probability(logits: jax.Array) -> jax.Array:
  """D(x) = Z(x) / (Z(x) + 1) = σ(s(x)) (B,): the probability of "real" (classes 1..K) when
  the fake class's logit is fixed at 0 (Sec. 5)."""
  return jax.nn.sigmoid(real_log_mass(logits))


def supervised_loss(*, logits_labelled: jax.Array, labels: jax.Array) -> tuple[jax.Array, Metrics]:
  """L_supervised = −E_{(x, y) labelled} log p(y | x, y < K+1) (Sec. 5, Eq. for L_supervised):
  the cross-entropy of the K logits, since the fake class never is a label.

  Args:
    logits_labelled: D's logits (B, K) on the labelled batch.
    labels: integer labels (B,) in [0, K).

  Returns:
    (mean cross-entropy, {"error": the fraction of the batch misclassified (train error)}).
  """
  log_probs = jax.nn.log_softmax(logits_labelled, axis=-1)
  picked = jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
  error = jnp.mean((jnp.argmax(logits_labelled, axis=-1) != labels).astype(jnp.float32))
  return -jnp.mean(picked), {"error": error}


def unsupervised_loss(
  *, logits_unlabelled: jax.Array, logits_fake: jax.Array, half_weights: bool = True
) -> tuple[jax.Array, Metrics]:
  """L_unsupervised = −E_x log D(x) − E_z log(1 − D(G(z))) (Sec. 5), with D(x) = σ(s(x)):

    −log D(x) = softplus(−s(x)),   −log(1 − D(G(z))) = softplus(s(G(z))).

  Args:
    logits_unlabelled: D's logits (B, K) on the unlabelled real batch.
    logits_fake: D's logits (B, K) on G(z).
    half_weights: weight each half by 1/2, as the released code does (its loss_unl); False
      gives the paper's sum.

  Returns:
    (the loss, {"d_real": mean D(x_unlabelled), "d_fake": mean D(G(z)),
    "s_real"/"s_fake": mean s = log Z on each batch}).
  """
  s_real = real_log_mass(logits_unlabelled)
  s_fake = real_log_mass(logits_fake)
  real_term = jnp.mean(jax.nn.softplus(-s_real))
  fake_term = jnp.mean(jax.nn.softplus(s_fake))
  scale = 0.5 if half_weights else 1.0
  metrics = {
    "d_real": jnp.mean(jax.nn.sigmoid(s_real)),
    "d_fake": jnp.mean(jax.nn.sigmoid(s_fake)),
    "s_real": jnp.mean(s_real),
    "s_fake": jnp.mean(s_fake),
  }
  return scale * (real_term + fake_term), metrics
