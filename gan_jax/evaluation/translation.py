"""Evaluation of unpaired translation (CycleGAN, Zhu et al. 2017, Sec. 5.1): how well
G: X -> Y and F: Y -> X map each domain's test images into the other domain.

The trainer hands in translation functions (data flows one way):

  evaluator = TranslationEvaluator.from_config(config, options)   # loads both test splits
  metrics = evaluator({"y": G, "x": F}, step)   # G: images of X -> images of Y, F the reverse

Each function maps uint8 images (N, H, W, C) to floats in [-1, 1] (N, H, W, C). For each
direction S -> T (the test images of S translated into T), with T's judge:

  a classifier of T (gan_jax.metrics.classifiers; eval.classifier_<t>, by default the one named
  like data.domain_<t>.name, if any):
    eval/label_preservation_<s><t>  the fraction of translated images the classifier of T
                                    gives the label of their source image (needs labels in S:
                                    digits <-> MNIST; the paper's FCN score plays this role for
                                    Cityscapes labels <-> photos).
    eval/classifier_fid_<t>         the Fréchet distance in the classifier's features between
                                    the translated images and T's real images.
    eval/classifier_accuracy_<t>    the classifier's accuracy on T's own test images (a
                                    ceiling for the label preservation into T).
    eval/label_preservation_<s><t>_untranslated, eval/classifier_fid_<t>_untranslated
                                    the same two metrics of S's test images as they are (the
                                    identity as a translation; when both domains have one
                                    image shape): what a translation must beat.
  no classifier (photos, paintings):
    eval/fid_<t>                    Inception FID of the translated images against T's real
                                    images (and eval/fid_<t>_untranslated, of S's images).
  eval/translated_<s><t>            the number of images translated.

Inputs: the test split of S, all of it or a fixed subset of eval.num_samples images (the same
for every evaluation and run). Real images of T: split eval.reference_split, all of it or a
fixed subset of eval.reference_samples; their features are cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from absl import logging

from gan_jax.core import parallel
from gan_jax.core.registry import ConfigError
from gan_jax.data.sources import load_source
from gan_jax.data.unpaired import DOMAINS, domain_config
from gan_jax.images import to_uint8
from gan_jax.metrics import classifiers, frechet, reference_stats
from gan_jax.metrics import features as features_lib

METRIC = "translation"
_OTHER = {"x": "y", "y": "x"}


def _direction(source: str, target: str) -> str:
  return f"{source}{target}"


class TranslationEvaluator:
  """Scores G: X -> Y and F: Y -> X (see the module docstring).

  Attributes:
    inputs: {"x", "y": uint8 test images (N, H, W, C) of the domain}, what gets translated.
    labels: {"x", "y": int labels (N,) of `inputs`, or None}.
    judges: {"x", "y": FeatureExtractor of the domain's classifier or Inception}.
    kinds: {"x", "y": "classifier" or "inception"}.
    reference: {"x", "y": the judge's outputs on the domain's real images, with "mu" and
      "sigma"}.
    baseline: {"eval/classifier_accuracy_<v>": the classifier's accuracy on domain V's test
      images} for the domains with a classifier and labels.
    best_metric, best_mode: the returned name that selects the best checkpoint (or None), and
      "min" or "max".
    needs: what the trainer hands in: "translate" (translation functions).
  """

  needs = "translate"

  def __init__(
    self,
    inputs: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray | None],
    judges: Mapping[str, features_lib.FeatureExtractor],
    kinds: Mapping[str, str],
    reference: Mapping[str, Mapping[str, np.ndarray]],
    best_metric: str | None = None,
    best_mode: str = "min",
  ):
    self.inputs, self.labels = dict(inputs), dict(labels)
    self.judges, self.kinds, self.reference = dict(judges), dict(kinds), dict(reference)
    self.best_metric, self.best_mode = best_metric, best_mode
    # Constants of the data and judges, reported with every evaluation: what a perfect
    # translation could reach and what no translation at all (the identity) scores.
    self.baseline: dict[str, float] = {}
    for v in DOMAINS:
      if self.kinds[v] == "classifier" and self.labels[v] is not None:
        logits = self.judges[v](self.inputs[v])["logits"][:, 0]
        self.baseline[f"eval/classifier_accuracy_{v}"] = float(
          np.mean(logits.argmax(-1) == self.labels[v])
        )
    for s in DOMAINS:
      t = _OTHER[s]
      if self.inputs[s].shape[1:] != self.inputs[t].shape[1:]:
        continue
      out = self.judges[t](self.inputs[s])
      fid = self._fid(t, out["features"])
      if self.kinds[t] == "classifier":
        self.baseline[f"eval/classifier_fid_{t}_untranslated"] = fid
        if self.labels[s] is not None:
          predicted = out["logits"][:, 0].argmax(-1)
          self.baseline[f"eval/label_preservation_{_direction(s, t)}_untranslated"] = float(
            np.mean(predicted == self.labels[s])
          )
      else:
        self.baseline[f"eval/fid_{t}_untranslated"] = fid

  def _fid(self, t: str, features: np.ndarray) -> float:
    """Fréchet distance of `features` (N, D) to domain t's real images, in t's judge."""
    stats = frechet.gaussian_stats(features, mesh=self.judges[t].mesh)
    ref = self.reference[t]
    return float(frechet.frechet_distance(stats.mu, stats.sigma, ref["mu"], ref["sigma"]))

  def outputs(self) -> dict[str, str]:
    """{metric name: "min" or "max"} of what __call__ returns."""
    out = {}
    for s in DOMAINS:
      t = _OTHER[s]
      if self.kinds[t] == "classifier":
        out[f"eval/classifier_fid_{t}"] = "min"
        if self.labels[s] is not None:
          out[f"eval/label_preservation_{_direction(s, t)}"] = "max"
      else:
        out[f"eval/fid_{t}"] = "min"
    return out

  @classmethod
  def from_config(cls, config, options: Mapping[str, Any], mesh=None) -> TranslationEvaluator:
    """Loads both domains' test images and the judges' reference features.

    Args:
      config: a run config with data.source = "unpaired".
      options: the `eval` section completed with its defaults.
      mesh: the devices that run the judges (default: all).
    """
    data = config.data.to_dict()
    if data.get("source") != "unpaired":
      raise ConfigError(
        f"eval.metrics='{METRIC}' evaluates translation between two domains: it needs "
        f"data.source='unpaired', got {data.get('source')!r}"
      )
    mesh = mesh if mesh is not None else parallel.make_mesh()
    seed = config.get("seed", 0)
    inputs, labels, judges, kinds, reference = {}, {}, {}, {}, {}
    for v in DOMAINS:
      test_cfg = domain_config(data, v, "test")
      source = load_source(test_cfg, seed)
      idx = reference_stats.reference_indices(len(source), options["num_samples"])
      batch = source[idx]
      inputs[v] = batch["image"]
      labels[v] = np.asarray(batch["label"], np.int64) if "label" in batch else None
      dataset = options.get(f"classifier_{v}") or classifiers.dataset_for(test_cfg["name"])
      if dataset:
        classifiers.DATASETS.get(dataset, f"eval.classifier_{v}")
        judges[v] = features_lib.EXTRACTORS.get(f"{dataset}_classifier", "eval.metrics")(
          options, mesh
        )
        kinds[v] = "classifier"
      else:
        judges[v] = features_lib.EXTRACTORS.get("inception", "eval.metrics")(options, mesh)
        kinds[v] = "inception"
      split = options["reference_split"]
      reference[v] = reference_stats.real_features(
        domain_config(data, v, split), split, options["reference_samples"], judges[v], seed=seed
      )
    evaluator = cls(inputs, labels, judges, kinds, reference)
    best = options["best_metric"]
    valid = evaluator.outputs()
    if best in ("", "auto"):
      evaluator.best_metric = None if not best else next(iter(valid))
    else:
      name = best if best.startswith("eval/") else f"eval/{best}"
      if name not in valid:
        raise ConfigError(
          f"eval.best_metric={best!r} is not computed with eval.metrics='{METRIC}'; valid: '', "
          f"auto, {', '.join(valid)}"
        )
      evaluator.best_metric = name
    if evaluator.best_metric:
      evaluator.best_mode = valid[evaluator.best_metric]
    return evaluator

  def __call__(
    self, translate_fns: Mapping[str, Callable[[np.ndarray], np.ndarray]], step: int
  ) -> dict[str, float]:
    """The metrics of the module docstring.

    Args:
      translate_fns: {"y": G, "x": F}, each mapping uint8 images (N, H, W, C) of the other
        domain to floats in [-1, 1] (N, H, W, C) of its own.
      step: the training step (for logging).
    """
    start = time.time()
    results = dict(self.baseline)
    for s in DOMAINS:
      t = _OTHER[s]
      translated = np.asarray(translate_fns[t](self.inputs[s]))
      if translated.shape[0] != len(self.inputs[s]):
        raise ValueError(
          f"the translation into {t} returned {translated.shape} for {len(self.inputs[s])} images"
        )
      out = self.judges[t](to_uint8(translated))
      fid = self._fid(t, out["features"])
      d = _direction(s, t)
      results[f"eval/translated_{d}"] = float(len(translated))
      if self.kinds[t] == "classifier":
        results[f"eval/classifier_fid_{t}"] = float(fid)
        if self.labels[s] is not None:
          predicted = out["logits"][:, 0].argmax(-1)
          results[f"eval/label_preservation_{d}"] = float(np.mean(predicted == self.labels[s]))
      else:
        results[f"eval/fid_{t}"] = float(fid)
    results["perf/eval_seconds"] = time.time() - start
    logging.info(
      "step %d eval: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in sorted(results.items()))
    )
    return results
