"""Evaluation of generators during training and after: the metric registry, the Evaluator
(given a sample function by its caller), the ClassificationEvaluator (given classification
functions: a classifier's test error), the TranslationEvaluator (given translation functions:
CycleGAN's two directions), and plots of logged metrics (`plots`)."""

from gan_jax.evaluation.classification import ClassificationEvaluator
from gan_jax.evaluation.evaluator import (
  DEFAULTS,
  METRICS,
  Evaluator,
  Metric,
  build_evaluator,
  eval_options,
  is_better,
  make_evaluator,
  mode_coverage,
  mode_labels,
  mode_probabilities,
  resolve_best,
  resolve_metrics,
)
from gan_jax.evaluation.translation import TranslationEvaluator

__all__ = [
  "DEFAULTS",
  "METRICS",
  "ClassificationEvaluator",
  "Evaluator",
  "Metric",
  "TranslationEvaluator",
  "build_evaluator",
  "eval_options",
  "is_better",
  "make_evaluator",
  "mode_coverage",
  "mode_labels",
  "mode_probabilities",
  "resolve_best",
  "resolve_metrics",
]
