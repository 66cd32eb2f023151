"""FID, KID, Inception score and precision/recall on synthetic features with known answers."""

from __future__ import annotations

import itertools

import chex
import jax
import numpy as np
import pytest
import scipy.linalg

from gan_jax import metrics
from gan_jax.metrics import frechet, inception
from gan_jax.metrics import inception_score as is_lib
from gan_jax.metrics import kid as kid_lib
from gan_jax.metrics import precision_recall as pr_lib


def _random_psd(rng, d, rank=None):
  a = rng.normal(size=(d, rank or d))
  return a @ a.T / d


# ----------------------------------------------------------------------------- FID


def test_trace_sqrt_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  for d in (2, 16, 64):
    s1, s2 = _random_psd(rng, d), _random_psd(rng, d)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    np.testing.assert_allclose(frechet.trace_sqrt_product(s1, s2), expected, rtol=1e-10)


def test_trace_sqrt_rank_deficient_is_accurate():
  # Covariances of fewer samples than dimensions (the usual FID situation on small runs):
  # check against the exact value via the nonzero spectrum, and that it is real.
  rng = np.random.default_rng(1)
  s1, s2 = _random_psd(rng, 50, rank=10), _random_psd(rng, 50, rank=20)
  eig = np.linalg.eigvals(s1 @ s2)
  expected = np.sum(np.sqrt(np.clip(eig.real, 0, None)))
  np.testing.assert_allclose(frechet.trace_sqrt_product(s1, s2), expected, rtol=1e-6)


def test_frechet_distance_of_gaussians_closed_form():
  # For commuting (diagonal) covariances FID = |Δμ|² + Σ (σ1 - σ2)².
  rng = np.random.default_rng(2)
  mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
  v1, v2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
  got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_fid_of_a_set_with_itself_is_zero():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(300, 32)).astype(np.float32) * 3 + 10
  stats = metrics.gaussian_stats(x)
  assert metrics.fid_from_stats(stats, stats) < 1e-8
  assert metrics.fid_from_features(x, x) < 1e-6


def test_fid_grows_with_shift():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(500, 16)).astype(np.float32)
  y = rng.normal(size=(500, 16)).astype(np.float32)
  near = metrics.fid_from_features(x, y)
  far = metrics.fid_from_features(x, y + 2.0)
  assert near < 0.5
  np.testing.assert_allclose(far - near, 16 * 4.0, rtol=0.1)


def test_gaussian_stats_match_numpy_with_large_mean():
  # Features with a large common offset: naive float32 E[xx^T] - μμ^T would lose the
  # covariance; the shifted, float64-accumulated sums must not. 1003 rows leaves a partial
  # chunk that has to be padded correctly.
  rng = np.random.default_rng(5)
  x = (rng.normal(size=(1003, 24)) * 0.1 + 1000.0).astype(np.float32)
  stats = metrics.gaussian_stats(x, chunk=256)
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(stats.mu, x64.mean(0), rtol=1e-9)
  np.testing.assert_allclose(stats.sigma, np.cov(x64, rowvar=False), atol=2e-6)
  assert stats.n == 1003


def test_fid_of_few_samples_matches_the_covariance_route():
  # Fewer samples than dimensions: fid_from_features takes the cross-product route; it must
  # equal the distance of the (D, D) covariances (float64 NumPy here; the device-accumulated
  # float32 moments of gaussian_stats agree to their own precision).
  rng = np.random.default_rng(7)
  x = (rng.normal(size=(10, 64)) * 2 + 5).astype(np.float32)
  y = (rng.normal(size=(13, 64)) @ rng.normal(size=(64, 64)) / 8).astype(np.float32)
  for a, b in ((x, y), (y, x), (x, x[:7])):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = metrics.frechet_distance(
      a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False)
    )
    got = metrics.fid_from_features(a, b)
    np.testing.assert_allclose(got, exact, rtol=1e-6)
    stats = metrics.fid_from_stats(metrics.gaussian_stats(a), metrics.gaussian_stats(b))
    np.testing.assert_allclose(got, stats, rtol=1e-4)
  assert metrics.fid_from_features(x, x) < 1e-9
  with pytest.raises(ValueError, match="N >= 2"):
    metrics.fid_from_features(x, y[:, :32])


def test_fid_to_stats_matches_the_covariance_route():
  """The evaluator's FID of generated features against cached reference statistics: the
  (N, N) route for N <= D must equal the (D, D) one."""
  rng = np.random.default_rng(3)
  ref = rng.normal(size=(200, 48)) @ rng.normal(size=(48, 48)) / 6 + 2
  stats = metrics.GaussianStats(ref.mean(0), np.cov(ref, rowvar=False), len(ref))
  for n in (2, 9, 48, 60):  # 60 > D: the covariance route itself
    x = (rng.normal(size=(n, 48)) * 1.5 + 1).astype(np.float32)
    x64 = x.astype(np.float64)
    sigma = np.cov(x64, rowvar=False)
    exact = metrics.frechet_distance(x64.mean(0), sigma, stats.mu, stats.sigma)
    np.testing.assert_allclose(metrics.fid_to_stats(x, stats), exact, rtol=1e-5)
  with pytest.raises(ValueError, match="N >= 2, 48"):
    metrics.fid_to_stats(x[:, :40], stats)


def test_fid_rejects_mismatched_stats():
  with pytest.raises(ValueError, match="mismatched"):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_fid_of_images_equals_fid_of_extractor_features():
  # gan_jax.metrics.fid(a, b) in one call == the Inception extractor's features of each set
  # through fid_from_features. Grayscale images, so the channel conversion is exercised too.
  try:
    inception.load_params()
  except FileNotFoundError as e:
    pytest.skip(f"Inception weights not converted ({e})")
  rng = np.random.default_rng(6)
  a = rng.integers(0, 128, (3, 16, 16, 1), dtype=np.uint8)
  b = rng.integers(96, 256, (3, 16, 16, 1), dtype=np.uint8)
  extractor = metrics.EXTRACTORS.get("inception")({"batch_size": 4})
  expected = metrics.fid_from_features(extractor(a)["features"], extractor(b)["features"])
  assert expected > 1.0  # the two sets differ, so the comparison below is not trivial
  got = metrics.fid(a, b)
  assert isinstance(got, float)
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  assert metrics.fid(a, a) < 1e-6 * expected


def test_fid_of_images_rejects_bad_input():
  with pytest.raises(ValueError, match="uint8"):
    metrics.fid(np.zeros((4, 8, 8, 1), np.float32), np.zeros((4, 8, 8, 1), np.uint8))
  with pytest.raises(ValueError, match="N >= 2"):
    metrics.fid(np.zeros((1, 8, 8, 1), np.uint8), np.zeros((4, 8, 8, 1), np.uint8))


# ----------------------------------------------------------------------------- KID


def _population_mmd2(x, y):
  """MMD² of the empirical distributions of x and y (expectations over independent draws,
  so including i = j pairs): the quantity an unbiased estimator from iid draws targets."""
  k = lambda a, b: np.asarray(kid_lib.polynomial_kernel(a, b), np.float64)
  return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_kid_estimator_is_exactly_unbiased():
  # Samples of size 2 drawn with replacement from 3-point populations: average the estimator
  # over every possible pair of samples (each equally likely) and compare with the
  # population MMD². Equality up to round-off means no bias at all; the biased V-statistic
  # (i = j terms kept) misses by a lot.
  rng = np.random.default_rng(6)
  px = rng.normal(size=(3, 4)).astype(np.float32)
  py = (rng.normal(size=(3, 4)) + 0.7).astype(np.float32)
  samples = list(itertools.product(range(3), repeat=2))
  xs = np.stack([px[list(s)] for s in samples])
  ys = np.stack([py[list(s)] for s in samples])
  xi, yi = np.meshgrid(np.arange(len(samples)), np.arange(len(samples)), indexing="ij")
  est = jax.vmap(kid_lib.mmd2_unbiased)(xs[xi.ravel()], ys[yi.ravel()])
  truth = _population_mmd2(px, py)
  np.testing.assert_allclose(float(np.mean(np.asarray(est, np.float64))), truth, rtol=1e-5)
  k = lambda a, b: np.asarray(kid_lib.polynomial_kernel(a, b), np.float64)
  biased = np.mean(
    [
      k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()
      for a, b in zip(xs[xi.ravel()], ys[yi.ravel()])
    ]
  )
  assert abs(biased - truth) > 0.05 * abs(truth)


def test_kid_same_distribution_near_zero_and_shift_positive():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(400, 16)).astype(np.float32)
  y = rng.normal(size=(400, 16)).astype(np.float32)
  same, same_std = kid_lib.kid(x, y, num_subsets=20, subset_size=100)
  # Unbiased: can be negative; |mean| within a few standard errors of 0.
  assert abs(same) < 3 * same_std / np.sqrt(20) + 1e-3
  shifted, _ = kid_lib.kid(x, y + 1.0, num_subsets=20, subset_size=100)
  assert shifted > 0.05


def test_kid_needs_two_samples():
  with pytest.raises(ValueError, match="at least 2"):
    kid_lib.kid(np.zeros((1, 3)), np.zeros((5, 3)))


# ----------------------------------------------------------------------------- IS


def test_inception_score_of_uniform_predictions_is_one():
  probs = np.full((100, 7), 1 / 7, np.float32)
  mean, std = is_lib.inception_score(probs=probs)
  np.testing.assert_allclose(mean, 1.0, atol=1e-6)
  assert std < 1e-6


def test_inception_score_of_confident_balanced_predictions_is_num_classes():
  k = 10
  labels = np.arange(1000) % k  # every split of 100 holds each class 10 times
  mean, std = is_lib.inception_score(probs=np.eye(k, dtype=np.float32)[labels])
  np.testing.assert_allclose(mean, k, rtol=1e-5)
  assert std < 1e-4


def test_inception_score_of_one_confident_class_is_one():
  probs = np.zeros((50, 5), np.float32)
  probs[:, 2] = 1
  np.testing.assert_allclose(is_lib.inception_score(probs=probs, splits=5)[0], 1.0, atol=1e-6)


def test_inception_score_from_logits_matches_probs():
  rng = np.random.default_rng(8)
  logits = rng.normal(size=(200, 12)).astype(np.float32) * 3
  probs = np.asarray(jax.nn.softmax(logits))
  a = is_lib.inception_score(logits=logits)
  b = is_lib.inception_score(probs=probs)
  np.testing.assert_allclose(a, b, rtol=1e-5)
  assert 1.0 < a[0] < 12.0


def test_inception_score_argument_checks():
  with pytest.raises(ValueError, match="exactly one"):
    is_lib.inception_score()
  with pytest.raises(ValueError, match="N >= splits"):
    is_lib.inception_score(probs=np.ones((5, 3)) / 3)


# ----------------------------------------------------------------------------- P&R


def test_manifold_radii_match_brute_force():
  rng = np.random.default_rng(9)
  x = rng.normal(size=(37, 5)).astype(np.float32)
  radii = pr_lib.manifold_radii(x, k=3, block=8)
  d = ((x[:, None] - x[None]) ** 2).sum(-1)
  expected = np.sort(d, axis=1)[:, 3]  # self (0) is the first neighbour
  np.testing.assert_allclose(radii, expected, rtol=1e-4, atol=1e-5)


def test_precision_recall_identical_sets_are_one():
  rng = np.random.default_rng(10)
  x = rng.normal(size=(64, 8)).astype(np.float32)
  chex.assert_trees_all_close(pr_lib.precision_recall(x, x, k=3, block=16), (1.0, 1.0))


def test_precision_recall_detects_missing_and_spurious_modes():
  # Real data: two clusters; fake: only the first cluster plus far-away junk.
  rng = np.random.default_rng(11)
  a = rng.normal(size=(100, 4)).astype(np.float32)
  b = (rng.normal(size=(100, 4)) + 50).astype(np.float32)
  real = np.concatenate([a, b])
  junk = (rng.normal(size=(100, 4)) - 50).astype(np.float32)
  fake = np.concatenate([rng.normal(size=(100, 4)).astype(np.float32), junk])
  precision, recall = pr_lib.precision_recall(real, fake, k=3, block=64)
  assert 0.35 < precision < 0.6  # junk half is outside the real manifold
  assert 0.35 < recall < 0.6  # cluster b is not covered
