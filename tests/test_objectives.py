"""Objectives against hand computations; the gradient penalty against per-sample gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses, objectives
from gan_jax.core.registry import ConfigError
from gan_jax.models import Discriminator

D_REAL = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
D_FAKE = np.array([-0.5, 1.5, -2.0, 0.3], np.float32)


def _softplus(x):
  return np.log1p(np.exp(x))


def test_minimax_discriminator_loss():
  loss, metrics = losses.minimax_discriminator_loss(d_real=D_REAL, d_fake=D_FAKE)
  # -E log σ(d_real) - E log(1 - σ(d_fake))
  sig = lambda x: 1 / (1 + np.exp(-x))
  expected = -np.mean(np.log(sig(D_REAL))) - np.mean(np.log(1 - sig(D_FAKE)))
  chex.assert_trees_all_close(loss, expected, rtol=1e-6)
  chex.assert_trees_all_close(metrics["p_real"], np.mean(sig(D_REAL)), rtol=1e-6)


def test_one_sided_label_smoothing():
  alpha = 0.9
  loss, _ = losses.minimax_discriminator_loss(d_real=D_REAL, d_fake=D_FAKE, real_label=alpha)
  sig = lambda x: 1 / (1 + np.exp(-x))
  # Cross-entropy with target α for real, 0 for fake.
  real = -(alpha * np.log(sig(D_REAL)) + (1 - alpha) * np.log(1 - sig(D_REAL)))
  expected = np.mean(real) - np.mean(np.log(1 - sig(D_FAKE)))
  chex.assert_trees_all_close(loss, expected, rtol=1e-6)


def test_generator_losses():
  sig = lambda x: 1 / (1 + np.exp(-x))
  loss, _ = losses.minimax_generator_loss(d_fake=D_FAKE)
  chex.assert_trees_all_close(loss, np.mean(np.log(1 - sig(D_FAKE))), rtol=1e-6)
  loss, _ = losses.non_saturating_generator_loss(d_fake=D_FAKE)
  chex.assert_trees_all_close(loss, -np.mean(np.log(sig(D_FAKE))), rtol=1e-6)


def test_lsgan():
  loss, _ = losses.lsgan_discriminator_loss(d_real=D_REAL, d_fake=D_FAKE)
  # (0.25 + 4 + 1 + 1) / 4 + (0.25 + 2.25 + 4 + 0.09) / 4
  chex.assert_trees_all_close(loss, 6.25 / 4 + 6.59 / 4, rtol=1e-6)
  loss, _ = losses.lsgan_generator_loss(d_fake=D_FAKE)
  # (2.25 + 0.25 + 9 + 0.49) / 4
  chex.assert_trees_all_close(loss, 11.99 / 4, rtol=1e-6)


def test_wasserstein():
  loss, metrics = losses.wasserstein_critic_loss(d_real=D_REAL, d_fake=D_FAKE)
  # mean(d_fake) = -0.7/4, mean(d_real) = 1.5/4
  chex.assert_trees_all_close(loss, -0.7 / 4 - 1.5 / 4, rtol=1e-6)
  chex.assert_trees_all_close(metrics["wasserstein"], 2.2 / 4, rtol=1e-6)
  loss, _ = losses.wasserstein_generator_loss(d_fake=D_FAKE)
  chex.assert_trees_all_close(loss, 0.7 / 4, rtol=1e-6)


def test_gradient_penalty_linear_critic():
  # d(x) = <w, x> has gradient w everywhere: the penalty is (‖w‖ - 1)² whatever ε is.
  w = jnp.full((4, 4, 1), 0.5)  # ‖w‖ = 2
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 1))
  penalty, metrics = losses.gradient_penalty(
    critic=critic, x_real_view=x, x_fake=-x, key=jax.random.PRNGKey(1)
  )
  chex.assert_trees_all_close(penalty, 1.0, rtol=1e-5)
  chex.assert_trees_all_close(metrics["grad_norm"], 2.0, rtol=1e-5)


def test_gradient_penalty_matches_per_sample_gradients():
  """Against vmap of single-example gradients of a real (BN-free) critic, with ε redrawn."""
  critic_net = Discriminator(width=4, norm="none")
  x_real = jax.random.normal(jax.random.PRNGKey(0), (5, 16, 16, 1))
  x_fake = jax.random.normal(jax.random.PRNGKey(1), (5, 16, 16, 1))
  params = critic_net.init(jax.random.PRNGKey(2), x_real)
  critic = lambda x: critic_net.apply(params, x)
  key = jax.random.PRNGKey(3)
  penalty, _ = losses.gradient_penalty(critic=critic, x_real_view=x_real, x_fake=x_fake, key=key)

  eps = np.asarray(jax.random.uniform(key, (5, 1, 1, 1)))
  x_hat = eps * np.asarray(x_real) + (1 - eps) * np.asarray(x_fake)
  single = lambda x: critic_net.apply(params, x[None])[0]
  grads = jax.vmap(jax.grad(single))(jnp.asarray(x_hat))
  norms = np.sqrt(np.sum(np.asarray(grads, np.float64) ** 2, axis=(1, 2, 3)))
  chex.assert_trees_all_close(penalty, np.mean((norms - 1) ** 2), rtol=1e-4)


def test_gradient_penalty_is_differentiable_wrt_critic():
  w0 = jnp.full((2, 2, 1), 1.0)  # ‖w‖ = 2, penalty (‖w‖-1)², d/dw = 2(‖w‖-1) w/‖w‖ = w
  x = jnp.ones((2, 2, 2, 1))

  def penalty(w):
    critic = lambda v: jnp.sum(v * w, axis=(1, 2, 3))
    return losses.gradient_penalty(
      critic=critic, x_real_view=x, x_fake=x, key=jax.random.PRNGKey(0)
    )[0]

  chex.assert_trees_all_close(jax.grad(penalty)(w0), w0, rtol=1e-5)


def test_clip_weights():
  params = {"a": jnp.array([-1.0, 0.005, 0.5]), "b": {"c": jnp.array([[0.02]])}}
  clipped = losses.clip_weights(params, clip=0.01)
  chex.assert_trees_all_close(
    clipped, {"a": jnp.array([-0.01, 0.005, 0.01]), "b": {"c": jnp.array([[0.01]])}}
  )


@pytest.mark.parametrize(
  "name,d_terms,g_terms,constrained",
  [
    ("minimax", ("adv",), ("adv",), False),
    ("non_saturating", ("adv",), ("adv",), False),
    ("lsgan", ("adv",), ("adv",), False),
    ("wgan", ("adv",), ("adv",), True),
    ("wgan_gp", ("adv", "gp"), ("adv",), False),
  ],
)
def test_registry_builds_objectives(name, d_terms, g_terms, constrained):
  cfg = {"real_label": 1.0, "gp_weight": 10.0, "clip": 0.01}
  objective = objectives.OBJECTIVES.get(name)(cfg)
  assert tuple(t.name for t in objective.discriminator) == d_terms
  assert tuple(t.name for t in objective.generator) == g_terms
  assert (objective.discriminator_constraint is not None) == constrained
  if name == "wgan_gp":
    assert objective.discriminator[1].weight == 10.0
    assert objective.discriminator[1].inputs == ("critic", "x_real_view", "x_fake", "key")


def test_unknown_objective_lists_valid_names():
  with pytest.raises(ConfigError, match="objective.name.*lsgan.*minimax.*non_saturating.*wgan"):
    objectives.OBJECTIVES.get("hing", field="objective.name")
