"""Test-set classification error of a game's classifier (the semi-supervised K+1 GAN's D,
Salimans et al. 2016, Sec. 5: the error rates of Tables 1-3).

The trainer hands in the classification functions (data flows one way):

  evaluator = ClassificationEvaluator.from_config(config)   # loads the test split once
  metrics = evaluator(predict_fns, step)   # predict_fns: {"current"[, "ema"]: images -> logits}

Metrics:
  eval/test_error          fraction of the whole test split misclassified by the parameters
                           chosen with eval.classifier_params (the released code evaluates
                           with a running average of D's parameters: "ema").
  eval/test_errors         the count of misclassified test images (of those parameters).
  eval/test_examples       the number of test images (10,000 for MNIST).
  eval/uses_ema            1 when eval/test_error comes from the EMA, else 0.
  eval/test_error_current, eval/test_error_ema
                           the error of each set of parameters handed in.

`confusion(predict_fns)` counts the test images by true and predicted class, for a closer look
than the error (`python -m gan_jax.cli.evaluate --workdir=RUN --confusion`): a class or a
style of one that the labelled subset left uncovered shows as one large off-diagonal count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from absl import logging

from gan_jax import data as data_lib
from gan_jax.core.registry import ConfigError

CLASSIFIER_PARAMS = ("ema", "current")
METRIC = "test_error"
_READ_CHUNK = 4096


class ClassificationEvaluator:
  """Counts test-set misclassifications of the argmax of the logits.

  Attributes:
    images: the test images (N, H, W, C) uint8.
    labels: their labels (N,).
    params: which predict function gives eval/test_error: "ema" or "current".
    best_metric: "eval/test_error" or None (no best checkpoint).
    best_mode: "min".
    needs: what the trainer hands in: "predict" (classification functions).
  """

  needs = "predict"

  def __init__(
    self,
    images: np.ndarray,
    labels: np.ndarray,
    params: str = "ema",
    best_metric: str | None = None,
  ):
    if params not in CLASSIFIER_PARAMS:
      raise ConfigError(
        f"invalid value {params!r} for config field eval.classifier_params; valid: "
        f"{', '.join(map(repr, CLASSIFIER_PARAMS))}"
      )
    if len(images) != len(labels) or not len(images):
      raise ValueError(f"{len(images)} test images with {len(labels)} labels")
    self.images = images
    self.labels = np.asarray(labels).astype(np.int64)
    self.params = params
    self.best_metric = best_metric
    self.best_mode = "min"

  @classmethod
  def from_config(cls, config, options: Mapping[str, Any]) -> ClassificationEvaluator:
    """Loads the test split of config.data (all of it: data.num_examples is ignored).

    Args:
      config: the run config.
      options: the `eval` section completed with its defaults.
    """
    cfg = dict(config.data.to_dict(), split="test", num_examples=0)
    source = data_lib.load_source(cfg, config.get("seed", 0))
    parts = [
      source[np.arange(lo, min(len(source), lo + _READ_CHUNK))]
      for lo in range(0, len(source), _READ_CHUNK)
    ]
    if "label" not in parts[0]:
      raise ConfigError(
        f"eval.metrics='{METRIC}' needs test labels; dataset {cfg['name']!r} has none"
      )
    best = options["best_metric"]
    if best not in ("", "auto", METRIC, f"eval/{METRIC}"):
      raise ConfigError(
        f"eval.best_metric={best!r} is not computed with eval.metrics='{METRIC}'; valid: '', "
        f"auto, eval/{METRIC}"
      )
    return cls(
      np.concatenate([p["image"] for p in parts]),
      np.concatenate([p["label"] for p in parts]),
      params=options["classifier_params"],
      best_metric=f"eval/{METRIC}" if best else None,
    )

  def _logits(self, predict_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    logits = np.asarray(predict_fn(self.images))
    if logits.shape[:1] != self.labels.shape or logits.ndim != 2:
      raise ValueError(f"predict_fn returned {logits.shape} for {len(self.labels)} images")
    return logits

  def errors(self, predict_fn: Callable[[np.ndarray], np.ndarray]) -> int:
    """The number of test images whose argmax logit is not their label."""
    return int(np.sum(np.argmax(self._logits(predict_fn), axis=-1) != self.labels))

  def confusion(
    self, predict_fns: Mapping[str, Callable[[np.ndarray], np.ndarray]]
  ) -> dict[str, np.ndarray]:
    """Test images counted by true class (rows) and argmax class (columns).

    Args:
      predict_fns: {name: images -> logits (N, K)}, as for `__call__`.

    Returns:
      {name: (K, K) int64 counts}; row k sums to the number of test images of class k, and the
      off-diagonal entries sum to that parameter set's eval/test_errors.
    """
    out = {}
    for name, fn in predict_fns.items():
      logits = self._logits(fn)
      k = logits.shape[-1]
      if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= k):
        raise ValueError(f"test labels outside the classifier's {k} classes")
      counts = np.zeros((k, k), np.int64)
      np.add.at(counts, (self.labels, np.argmax(logits, axis=-1)), 1)
      out[name] = counts
    return out

  def __call__(
    self, predict_fns: Mapping[str, Callable[[np.ndarray], np.ndarray]], step: int
  ) -> dict[str, float]:
    """The metrics of the module docstring.

    Args:
      predict_fns: {"current": images -> logits, optionally "ema": the same with the EMA of
        the parameters}; images (N, H, W, C) uint8, logits (N, K).
      step: the training step (for logging).
    """
    if self.params not in predict_fns:
      raise ConfigError(
        f"eval.classifier_params={self.params!r} but the run keeps no EMA of the classifier's "
        "parameters: set train.ema_decay > 0, or eval.classifier_params='current'"
      )
    start = time.time()
    n = len(self.labels)
    counts = {name: self.errors(fn) for name, fn in predict_fns.items()}
    results = {f"eval/{METRIC}_{name}": c / n for name, c in counts.items()}
    results.update(
      {
        f"eval/{METRIC}": counts[self.params] / n,
        "eval/test_errors": float(counts[self.params]),
        "eval/test_examples": float(n),
        "eval/uses_ema": float(self.params == "ema"),
        "perf/eval_seconds": time.time() - start,
      }
    )
    logging.info(
      "step %d eval (%s parameters): test error %.4f (%d of %d); %s",
      step,
      self.params,
      results[f"eval/{METRIC}"],
      counts[self.params],
      n,
      ", ".join(f"{k}={c}" for k, c in sorted(counts.items())),
    )
    return {k: float(v) for k, v in results.items()}
