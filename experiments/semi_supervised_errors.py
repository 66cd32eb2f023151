r"""Which test images a semi-supervised run gets wrong, beside the labels it was given.

  python experiments/semi_supervised_errors.py runs/table1/mnist_n100_s2 \
      --out=docs/semi_supervised/table1/errors_mnist_n100_s2.png

Restores a run of configs/semi_supervised.py (its latest checkpoint, or --checkpoint), counts
the test images by true and predicted class with the parameters its test error uses
(eval.classifier_params: the running average of D's for the released code's setting), and
prints the largest off-diagonal counts. With --out it draws the largest confusion, true class
t taken for class p, as three panels: the run's labelled examples of t, up to --num test
images of t classified as p, and the labelled examples of p. With 10 labels per class a style
of a digit that none of its 10 labelled examples shows can end up in another class whole; the
panels show whether that is what happened.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import data as data_lib
from gan_jax import evaluation, sampling
from gan_jax import images as images_lib
from gan_jax.cli import evaluate
from gan_jax.data import semi_supervised as semi_data

# pylint: enable=g-import-not-at-top,wrong-import-position


def largest_confusions(matrix: np.ndarray, top: int) -> list[tuple[int, int, int]]:
  """The `top` largest off-diagonal counts of a (K, K) matrix as (count, true, predicted),
  largest first (ties: lower true class, then lower predicted class, first)."""
  k = matrix.shape[0]
  off = [(int(matrix[t, p]), t, p) for t in range(k) for p in range(k) if t != p]
  return sorted(off, key=lambda e: (-e[0], e[1], e[2]))[:top]


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdir", help="a run folder of configs/semi_supervised.py")
  parser.add_argument("--checkpoint", default="latest", help="latest, best or a step number")
  parser.add_argument("--top", type=int, default=5, help="off-diagonal counts to print")
  parser.add_argument("--num", type=int, default=40, help="misclassified images to draw")
  parser.add_argument("--out", default="", help="PNG of the largest confusion (empty: none)")
  args = parser.parse_args(argv)

  config, spec = evaluate.load_run(args.workdir)
  if not config.data.get("num_labels"):
    parser.error(f"{args.workdir} is not a semi-supervised run (its data.num_labels is 0)")
  evaluator = evaluation.make_evaluator(config, mesh=spec.mesh)
  state, step = evaluate.restore_state(args.workdir, config, spec, args.checkpoint)
  fns = sampling.evaluation_fns(evaluator.needs, spec, state, config.seed)
  params = evaluator.params
  # One pass of the classifier over the test set serves the counts and the picture.
  logits = np.asarray(fns[params](evaluator.images))
  matrix = evaluator.confusion({params: lambda images: logits})[params]
  errors = int(matrix.sum() - np.trace(matrix))
  confusions = largest_confusions(matrix, args.top)
  print(f"{args.workdir} step {step} ({params} parameters): {errors} of {matrix.sum()} wrong")
  for count, t, p in confusions:
    print(f"  {count:5d} test images of class {t} classified as {p}")

  if args.out:
    _, t, p = confusions[0]
    source = data_lib.load_source(config.data.to_dict(), config.seed)
    train_labels = semi_data.source_labels(source)
    labelled = semi_data.balanced_subset(
      train_labels, config.data.num_labels, config.seed, config.model.get("num_classes")
    )
    labels = train_labels[labelled]
    wrong = np.flatnonzero((evaluator.labels == t) & (np.argmax(logits, -1) == p))[: args.num]
    panels = [
      images_lib.make_grid(source[labelled[labels == t]]["image"], columns=5),
      images_lib.make_grid(evaluator.images[wrong], columns=8),
      images_lib.make_grid(source[labelled[labels == p]]["image"], columns=5),
    ]
    names = [f"labelled {t}", f"test {t} taken for {p}", f"labelled {p}"]
    images_lib.save_png(args.out, images_lib.side_by_side(panels, labels=names))
    print(f"wrote {args.out}")
  return {"step": step, "params": params, "errors": errors, "confusions": confusions}


if __name__ == "__main__":
  main()
