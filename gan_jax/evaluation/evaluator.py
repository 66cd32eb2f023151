"""Evaluation of generators: FID, KID, Inception score, precision/recall, and classifier
metrics for MNIST-like data, during training and after.

The training loop uses (data flows one way: the trainer hands a sample function in):

  evaluator = build_evaluator(config, mesh)      # None when config.eval.every == 0
  metrics = evaluator(sample_fn, step)           # {"eval/fid": ..., ...}
  evaluator = make_evaluator(config, mesh)       # the same, whatever eval.every (after training)
  evaluator.best_metric, evaluator.best_mode     # e.g. "eval/fid", "min"

`sample_fn(n)` returns n generated images (n, H, W, C) float32 in [-1, 1]. Images are
quantised to 8 bits (as the reference FID code does) before any feature extractor sees them.
Metric names are registered in `METRICS` (config field eval.metrics):

  fid               Inception FID (Heusel et al. 2017)            -> eval/fid
  kid               Inception KID (Bińkowski et al. 2018)         -> eval/kid, eval/kid_std
                    (kid_std left out when all subsets are the same)
  inception_score   Inception score (Salimans et al. 2016); needs
                    weights with logits (eval.inception_weights)  -> eval/is, eval/is_std
  precision_recall  improved precision/recall (Kynkäänniemi et al.
                    2019), Inception features                     -> eval/precision, eval/recall
  classifier_fid    Fréchet distance in the dataset classifier's
                    features (MNIST-like data)                    -> eval/classifier_fid
  classifier_is     Inception score with the dataset classifier's
                    predictions (over 1000 modes on stacked data) -> eval/classifier_is(_std)
  modes             modes covered and KL(mode histogram || uniform)
                    (Colour/Stacked MNIST; VEEGAN, Tempered GAN)  -> eval/modes, eval/mode_kl

A game with a classifier (the semi-supervised K+1 GAN) is evaluated instead by its test-set
classification error: eval.metrics="test_error" builds a `ClassificationEvaluator`
(`gan_jax.evaluation.classification`), to which the trainer hands classification functions
(images -> logits) rather than a sample function; its `needs` attribute says which. A
translation game (CycleGAN) is evaluated by eval.metrics="translation" (the default, "auto",
on unpaired data): a `TranslationEvaluator` (`gan_jax.evaluation.translation`) gets the
translation functions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from scipy.special import xlogy

from gan_jax.core import parallel
from gan_jax.core.registry import ConfigError, Registry, check_choice
from gan_jax.evaluation.classification import CLASSIFIER_PARAMS, ClassificationEvaluator
from gan_jax.evaluation.translation import TranslationEvaluator
from gan_jax.images import to_uint8
from gan_jax.metrics import classifiers, frechet, reference_stats
from gan_jax.metrics import features as features_lib
from gan_jax.metrics import inception_score as is_lib
from gan_jax.metrics import kid as kid_lib
from gan_jax.metrics import precision_recall as pr_lib

# Defaults of the `eval` section (configs/presets.py eval_config() documents each field);
# used to complete configs saved by runs that predate a field.
DEFAULTS = dict(
  every=0,
  metrics="auto",
  num_samples=0,
  reference_split="train",
  reference_samples=0,
  best_metric="auto",
  batch_size=100,
  inception_weights="",
  kid_subsets=100,
  kid_subset_size=1000,
  pr_k=3,
  classifier_params="ema",
  classifier_x="",
  classifier_y="",
)
# Samples per evaluation when eval.num_samples = 0: Inception metrics use the usual 10k;
# MNIST-like classifier metrics use 4096, as Tempered GAN's evaluation.
DEFAULT_SAMPLES_INCEPTION = 10_000
DEFAULT_SAMPLES_CLASSIFIER = 4096


@dataclasses.dataclass(frozen=True)
class Metric:
  """A metric: which extractor it needs and how it turns outputs into numbers.

  Attributes:
    extractor: "inception" or "classifier" (the dataset's classifier).
    compute: f(fake outputs, real outputs, options) -> {name: value}.
    outputs: {returned name: "min" or "max" (which is better)}; the first is the main one.
  """

  extractor: str
  compute: Callable[
    [Mapping[str, np.ndarray], Mapping[str, np.ndarray], Mapping[str, Any]], dict[str, float]
  ]
  outputs: Mapping[str, str]


METRICS: Registry[Metric] = Registry("metric")


def _fid(fake, real, options):
  reference = frechet.GaussianStats(mu=real["mu"], sigma=real["sigma"], n=0)
  return frechet.fid_to_stats(fake["features"], reference, mesh=options["mesh"])


METRICS.register("fid")(
  Metric("inception", lambda f, r, o: {"eval/fid": _fid(f, r, o)}, {"eval/fid": "min"})
)
METRICS.register("classifier_fid")(
  Metric(
    "classifier",
    lambda f, r, o: {"eval/classifier_fid": _fid(f, r, o)},
    {"eval/classifier_fid": "min"},
  )
)


def _kid(fake, real, options):
  mean, std = kid_lib.kid(
    fake["features"],
    real["features"],
    options["kid_subsets"],
    options["kid_subset_size"],
    mesh=options["mesh"],
  )
  # No spread to report when every subset is the whole of both feature sets (kid_lib.kid).
  return {"eval/kid": mean, **({"eval/kid_std": std} if np.isfinite(std) else {})}


METRICS.register("kid")(Metric("inception", _kid, {"eval/kid": "min", "eval/kid_std": "min"}))


def _inception_score(fake, real, options):
  del real, options
  if "logits" not in fake:
    raise ConfigError(
      "inception_score needs Inception weights with the 1008-way layer: set "
      "eval.inception_weights='full' after converting them (python -m "
      "gan_jax.metrics.inception --convert_pytorch_fid=PATH), or use "
      "classifier_is on MNIST-like data"
    )
  mean, std = is_lib.inception_score(logits=fake["logits"])
  return {"eval/is": mean, "eval/is_std": std}


METRICS.register("inception_score")(
  Metric("inception", _inception_score, {"eval/is": "max", "eval/is_std": "min"})
)


def _precision_recall(fake, real, options):
  p, r = pr_lib.precision_recall(
    real["features"], fake["features"], options["pr_k"], mesh=options["mesh"]
  )
  return {"eval/precision": p, "eval/recall": r}


METRICS.register("precision_recall")(
  Metric("inception", _precision_recall, {"eval/precision": "max", "eval/recall": "max"})
)


def mode_probabilities(logits: np.ndarray) -> np.ndarray:
  """Per-channel class logits (N, C, K) -> probabilities (N, K^C) of the joint mode
  (channel 0 most significant), treating channels as independent given the image."""
  probs = np.asarray(jax.nn.softmax(np.asarray(logits, np.float32), axis=-1), np.float64)
  joint = probs[:, 0]
  for c in range(1, probs.shape[1]):
    joint = (joint[:, :, None] * probs[:, c, None, :]).reshape(len(probs), -1)
  return joint.astype(np.float32)


def mode_labels(logits: np.ndarray) -> np.ndarray:
  """Per-channel class logits (N, C, K) -> mode index (N,) = Σ_c label_c K^(C-1-c), i.e.
  100 l_r + 10 l_g + l_b for Stacked MNIST."""
  logits = np.asarray(logits)
  k = logits.shape[-1]
  labels = logits.argmax(-1)
  return (labels * k ** np.arange(labels.shape[1] - 1, -1, -1)).sum(-1)


def mode_coverage(modes: np.ndarray, num_modes: int) -> tuple[int, float]:
  """(modes with at least one sample, KL(mode histogram || uniform)) of mode indices (N,)."""
  counts = np.bincount(np.asarray(modes), minlength=num_modes).astype(np.float64)
  if len(counts) > num_modes:
    raise ValueError(f"mode index {len(counts) - 1} >= number of modes {num_modes}")
  p = counts / counts.sum()
  kl = float(np.sum(xlogy(p, p * num_modes)))
  return int(np.count_nonzero(counts)), kl


def _classifier_is(fake, real, options):
  del real, options
  mean, std = is_lib.inception_score(probs=mode_probabilities(fake["logits"]))
  return {"eval/classifier_is": mean, "eval/classifier_is_std": std}


METRICS.register("classifier_is")(
  Metric(
    "classifier", _classifier_is, {"eval/classifier_is": "max", "eval/classifier_is_std": "min"}
  )
)


def _modes(fake, real, options):
  del real, options
  logits = fake["logits"]
  covered, kl = mode_coverage(mode_labels(logits), logits.shape[-1] ** logits.shape[1])
  return {"eval/modes": float(covered), "eval/mode_kl": kl}


METRICS.register("modes")(
  Metric("classifier", _modes, {"eval/modes": "max", "eval/mode_kl": "min"})
)


# ----------------------------------------------------------------------------- config


def eval_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The `eval` section as a dict, completed with DEFAULTS and validated."""
  section = config.eval.to_dict() if "eval" in config else {}
  unknown = sorted(set(section) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"unknown eval config fields {unknown}; valid: {sorted(DEFAULTS)}")
  options = dict(DEFAULTS, **section)
  for field in (
    "every",
    "num_samples",
    "reference_samples",
    "batch_size",
    "kid_subsets",
    "kid_subset_size",
    "pr_k",
  ):
    value = options[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ConfigError(
        f"invalid value {value!r} for config field eval.{field}; expected an int >= 0"
      )
  for field in ("batch_size", "kid_subsets", "pr_k"):
    if options[field] == 0:
      raise ConfigError(f"eval.{field} must be positive")
  if options["kid_subset_size"] < 2:
    raise ConfigError("eval.kid_subset_size must be >= 2")
  check_choice(options["reference_split"], ("train", "test"), "eval.reference_split")
  check_choice(options["classifier_params"], CLASSIFIER_PARAMS, "eval.classifier_params")
  return options


def resolve_metrics(spec: str | Sequence[str], data: Mapping[str, Any]) -> list[str]:
  """Metric names of eval.metrics ("auto", or comma-separated names), checked."""
  names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
  names = [n for n in names if n]
  if names == ["auto"]:
    if classifiers.dataset_for(data["name"]) and data["source"] != "digits":
      names = ["classifier_fid", "classifier_is"] + (["modes"] if data["stacked"] else [])
    else:
      names = ["fid"]
  if not names:
    raise ConfigError(f"eval.metrics is empty; valid names: auto, {', '.join(METRICS)}")
  for n in names:
    METRICS.get(n, "eval.metrics")
  return list(dict.fromkeys(names))


def resolve_best(best: str, metrics: Sequence[str]) -> tuple[str | None, str]:
  """(returned metric name, "min" or "max") that selects the best checkpoint."""
  outputs: dict[str, str] = {}
  for m in metrics:
    outputs.update(METRICS[m].outputs)
  if not best:
    return None, "min"
  if best == "auto":
    first = next(iter(METRICS[metrics[0]].outputs))
    return first, outputs[first]
  if best in metrics:  # a metric name: its main output
    first = next(iter(METRICS[best].outputs))
    return first, outputs[first]
  name = best if best.startswith("eval/") else f"eval/{best}"
  if name not in outputs:
    raise ConfigError(
      f"eval.best_metric={best!r} is not computed by eval.metrics "
      f"{list(metrics)}; valid: '', auto, {', '.join(sorted(outputs))}"
    )
  return name, outputs[name]


# ----------------------------------------------------------------------------- evaluator


class Evaluator:
  """Computes the configured metrics of generated images against cached real statistics.

  Build with `build_evaluator` (training) or `Evaluator.from_config` (any time). Reference
  features of the real data are computed (or read from the cache) at construction.

  Attributes:
    metrics: metric names (METRICS keys).
    num_samples: generated images per evaluation.
    best_metric: the returned name that decides the best checkpoint, or None.
    best_mode: "min" or "max".
    needs: what the trainer hands in: "samples" (a sample function).
  """

  needs = "samples"

  def __init__(
    self,
    metrics: Sequence[str],
    extractors: Mapping[str, Any],
    reference: Mapping[str, Mapping[str, np.ndarray]],
    num_samples: int,
    options: Mapping[str, Any],
    best_metric: str | None,
    best_mode: str,
  ):
    self.metrics = list(metrics)
    self.extractors = dict(extractors)
    self.reference = dict(reference)
    self.num_samples = num_samples
    self.options = dict(options)
    self.best_metric = best_metric
    self.best_mode = best_mode

  @classmethod
  def from_config(
    cls,
    config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh | None = None,
    reference_data: Mapping[str, Any] | None = None,
  ) -> Evaluator:
    """Reads config.eval, config.data and config.seed once.

    Args:
      config: a run config.
      mesh: devices for feature extraction (default: all).
      reference_data: a data section for the real images (default: config.data).
    """
    options = eval_options(config)
    data = dict(reference_data or config.data.to_dict())
    metrics = resolve_metrics(options["metrics"], data)
    best_metric, best_mode = resolve_best(options["best_metric"], metrics)
    kinds = {METRICS[m].extractor for m in metrics}
    num_samples = options["num_samples"] or (
      DEFAULT_SAMPLES_CLASSIFIER if kinds == {"classifier"} else DEFAULT_SAMPLES_INCEPTION
    )
    mesh = mesh if mesh is not None else parallel.make_mesh()
    extractors = {}
    for kind in sorted(kinds):
      if kind == "classifier":
        dataset = classifiers.dataset_for(data["name"])
        if dataset is None:
          raise ConfigError(
            f"metrics {[m for m in metrics if METRICS[m].extractor == 'classifier']} need a "
            f"dataset classifier, and there is none for data.name={data['name']!r}; "
            f"classifiers exist for {', '.join(classifiers.DATASETS)}"
          )
        name = f"{dataset}_classifier"
      else:
        name = kind
      extractors[kind] = features_lib.EXTRACTORS.get(name, "eval.metrics")(options, mesh)
    if "inception_score" in metrics and "logits" not in extractors["inception"].outputs.values():
      raise ConfigError(
        "eval.metrics has inception_score, but the Inception weights have no "
        "logits layer: convert pytorch-fid's weights (python -m "
        "gan_jax.metrics.inception --convert_pytorch_fid=PATH) and set "
        "eval.inception_weights='full'; on MNIST-like data classifier_is "
        "is the classifier-based score"
      )
    n_ref = options["reference_samples"] or num_samples
    reference = {
      kind: reference_stats.real_features(
        data, options["reference_split"], n_ref, ext, seed=config.get("seed", 0)
      )
      for kind, ext in extractors.items()
    }
    options["mesh"] = mesh
    return cls(metrics, extractors, reference, num_samples, options, best_metric, best_mode)

  def evaluate_images(self, images: np.ndarray) -> dict[str, float]:
    """Metrics of uint8 images (N, H, W, C) against the reference."""
    start = time.time()
    fake = {kind: ext(images, log_every=10) for kind, ext in self.extractors.items()}
    results: dict[str, float] = {}
    for m in self.metrics:
      metric = METRICS[m]
      results.update(
        metric.compute(fake[metric.extractor], self.reference[metric.extractor], self.options)
      )
    results = {k: float(v) for k, v in results.items()}
    results["eval/num_samples"] = float(len(images))
    results["perf/eval_seconds"] = time.time() - start
    return results

  def __call__(self, sample_fn: Callable[[int], np.ndarray], step: int) -> dict[str, float]:
    """Generates `num_samples` images with sample_fn and returns the metrics.

    Args:
      sample_fn: n -> images (n, H, W, C) float in [-1, 1] (values outside are clipped).
      step: the training step (for logging).
    """
    images = np.asarray(sample_fn(self.num_samples))
    if images.ndim != 4 or len(images) != self.num_samples:
      raise ValueError(
        f"sample_fn({self.num_samples}) returned shape {images.shape}; "
        f"expected ({self.num_samples}, H, W, C)"
      )
    results = self.evaluate_images(to_uint8(images))
    logging.info(
      "step %d eval: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in sorted(results.items()))
    )
    return results


def make_evaluator(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None
) -> Evaluator | ClassificationEvaluator | TranslationEvaluator:
  """The evaluator of the config's `eval` section (whatever eval.every says): a
  ClassificationEvaluator (test error) for eval.metrics="test_error"; a TranslationEvaluator
  for eval.metrics="translation" (and "auto" on unpaired data); else an Evaluator of generated
  images. Its `needs` says what its caller hands it (`gan_jax.sampling.evaluation_fns`).

  Args:
    config: the run config (reads eval, data and seed).
    mesh: the devices that run the feature extractors (default: all).
  """
  options = eval_options(config)
  spec = options["metrics"]
  names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
  names = [n for n in names if n]
  if "test_error" in names:
    if names != ["test_error"]:
      raise ConfigError(
        f"eval.metrics={spec!r}: test_error (a classifier's test error) cannot be combined "
        "with metrics of generated images"
      )
    return ClassificationEvaluator.from_config(config, options)
  unpaired = config.data.get("source") == "unpaired"
  if "translation" in names or (names == ["auto"] and unpaired):
    if names not in (["translation"], ["auto"]):
      raise ConfigError(
        f"eval.metrics={spec!r}: translation (the metrics of both directions) cannot be "
        "combined with other metrics"
      )
    return TranslationEvaluator.from_config(config, options, mesh=mesh)
  return Evaluator.from_config(config, mesh=mesh)


def build_evaluator(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None
) -> Evaluator | ClassificationEvaluator | TranslationEvaluator | None:
  """The evaluator for training: None if config.eval.every == 0, else `make_evaluator`."""
  if eval_options(config)["every"] == 0:
    return None
  return make_evaluator(config, mesh)


def is_better(value: float, best: float | None, mode: str) -> bool:
  """Whether `value` beats `best` (None: nothing yet) under mode "min" or "max"."""
  if best is None:
    return bool(np.isfinite(value))
  return bool(value < best if mode == "min" else value > best)
