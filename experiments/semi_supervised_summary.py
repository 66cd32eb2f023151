r"""Test errors of the semi-supervised K+1 GAN runs next to Table 1 of Salimans et al. 2016.

  python experiments/semi_supervised_summary.py RUNS_DIR --out=docs/semi_supervised
  python experiments/semi_supervised_summary.py runs/table1 --out=docs/semi_supervised/table1 \
      --copy_runs --at_epochs=1,10,50,100,200,300,last

Reads every run folder of RUNS_DIR (those of experiments/semi_supervised.sh, or any run of
configs/semi_supervised.py: the dataset, labels, seed and loss come from its config.json, not its
name; unfinished runs are included and marked) and prints two Markdown tables:

- one row per run: labelled examples, seed, D's loss (semi-supervised or supervised only),
  epochs done, the misclassified test images (of 10,000) at the last evaluation with the running
  average (EMA) of D's parameters and with the current ones, and seconds per epoch from the
  median of perf/steps_per_sec;
- per dataset, number of labels and loss: the mean ± std over seeds of those counts, next to the
  paper's Table 1 (MNIST, mean ± std over 10 random labelled subsets). Once a setting has a
  finished run, only its finished runs are counted (the others are named); until then its
  unfinished runs are, marked as such.

The counts are the last epoch's, never the lowest of a run: choosing the epoch by its test error
would select on the test set (configs/semi_supervised.py keeps no best checkpoint for the same
reason). --at_epochs adds a third table: each run's counts (EMA and current parameters) at
the end of the given epochs, "last" being its last evaluation.

With --out (default docs/semi_supervised; empty for none) the tables also go to OUT/table.md,
and OUT/test_errors.png draws every run's count against the epoch on a log scale, EMA solid and
current parameters dashed. --copy_runs also copies each run's record (config.json,
metrics.jsonl and the DONE marker of a finished run; no checkpoints) to OUT/runs/<run>, from
which this script makes the same tables again: a run's record outlives its runs folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.configs import semi_supervised
from gan_jax.evaluation import plots

# pylint: enable=g-import-not-at-top,wrong-import-position

# Table 1 of the paper, "Our model": misclassified test images of permutation-invariant MNIST,
# mean and std over 10 random labelled subsets (Sec. 5.1), per number of labelled examples.
PAPER = {20: (1677, 452), 50: (221, 136), 100: (93, 6.5), 200: (90, 4.2)}
EMA, CURRENT = "eval/test_error_ema", "eval/test_error_current"


class Run(NamedTuple):
  name: str  # the folder's name
  data: str  # config data.name
  labels: int
  seed: int
  supervised_only: bool  # D trained on L_supervised alone (the baseline)
  per_epoch: int  # iterations per epoch
  epochs: float  # the configured length, in epochs
  done: bool  # experiments/grid.sh's DONE marker is there
  series: plots.Series

  @property
  def group(self) -> tuple[str, int, bool]:
    """What the seeds of one setting share."""
    return self.data, self.labels, self.supervised_only


def read_runs(runs_dir: str) -> list[Run]:
  """The semi-supervised runs in runs_dir (folders or links to them) that logged metrics."""
  runs = []
  for name in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, name)
    config_path = os.path.join(path, "config.json")
    if not (os.path.isfile(config_path) and os.path.isfile(os.path.join(path, "metrics.jsonl"))):
      continue
    with open(config_path, encoding="utf-8") as f:
      config = json.load(f)
    if config.get("game") != "semi_supervised":
      continue
    data = config["data"]["name"]
    per_epoch = semi_supervised.TRAIN_EXAMPLES[data] // config["train"]["batch_size"]
    runs.append(
      Run(
        name=name,
        data=data,
        labels=int(config["data"]["num_labels"]),
        seed=int(config["seed"]),
        supervised_only=config["semi"]["unsupervised_weight"] == 0,
        per_epoch=per_epoch,
        epochs=config["train"]["steps"] / per_epoch,
        done=os.path.isfile(os.path.join(path, "DONE")),
        series=plots.read_metrics(path),
      )
    )
  return runs


def errors(run: Run, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
  """(epochs, misclassified test images) of one set of parameters, None if not logged."""
  if metric not in run.series:
    return None
  steps, error = run.series[metric]
  # The classifier evaluator logs fractions; counts read like the paper's table. Every
  # evaluation covers the whole test split, whose size is logged with it.
  examples = run.series["eval/test_examples"][1][-1] if "eval/test_examples" in run.series else 1e4
  return steps / run.per_epoch, np.rint(error * examples)


def last(run: Run, metric: str) -> float:
  """The count at the run's last evaluation (NaN if none)."""
  curve = errors(run, metric)
  return float(curve[1][-1]) if curve is not None else float("nan")


def seconds_per_epoch(run: Run) -> float:
  """Training time per epoch from the median logged rate (NaN if none)."""
  if "perf/steps_per_sec" not in run.series:
    return float("nan")
  rates = run.series["perf/steps_per_sec"][1]
  rates = rates[np.isfinite(rates) & (rates > 0)]
  return run.per_epoch / float(np.median(rates)) if rates.size else float("nan")


def epochs_done(run: Run) -> float:
  """Epochs up to the last evaluation."""
  curve = errors(run, EMA) or errors(run, CURRENT)
  return float(curve[0][-1]) if curve is not None else 0.0


def mean_std(values, note: str = "") -> str:
  """'mean ± std (n = k)' over seeds (sample std), the value alone for one seed; `note` goes
  inside the parentheses after k."""
  values = np.asarray([v for v in values if np.isfinite(v)], float)
  if values.size == 0:
    return "–"
  if values.size == 1:
    return f"{values[0]:.0f} (n = 1{note})"
  return f"{values.mean():.1f} ± {values.std(ddof=1):.1f} (n = {values.size}{note})"


def _loss(supervised_only: bool) -> str:
  return "supervised only" if supervised_only else "semi-supervised"


def _cell(value: float, digits: int = 0) -> str:
  """A table cell: `value` to `digits` decimals, "–" when there is none (NaN)."""
  return f"{value:.{digits}f}" if np.isfinite(value) else "–"


def run_table(runs: list[Run]) -> str:
  """One row per run (see the module docstring)."""
  lines = [
    "| run | data | labels | seed | D's loss | epochs | test errors, EMA | test errors, current "
    "| s / epoch | state |",
    "|---|---|---:|---:|---|---:|---:|---:|---:|---|",
  ]
  for run in runs:
    lines.append(
      f"| {run.name} | {run.data} | {run.labels} | {run.seed} | {_loss(run.supervised_only)} | "
      f"{epochs_done(run):g} / {run.epochs:g} | {_cell(last(run, EMA))} | "
      f"{_cell(last(run, CURRENT))} | {_cell(seconds_per_epoch(run), 1)} | "
      f"{'done' if run.done else 'unfinished'} |"
    )
  return "\n".join(lines)


def paper_table(runs: list[Run]) -> str:
  """Mean ± std over seeds per setting, next to the paper's figure where it has one."""
  # The paper's rows come first and stay when no run has their setting yet.
  groups: dict[tuple[str, int, bool], list[Run]] = {("mnist", n, False): [] for n in PAPER}
  for run in runs:
    groups.setdefault(run.group, []).append(run)
  lines = [
    "| data | labels | D's loss | paper (10 subsets) | test errors, EMA | test errors, current "
    "| seeds | epochs |",
    "|---|---:|---|---:|---:|---:|---|---|",
  ]
  # MNIST's semi-supervised rows first, as in the paper, then its baseline, then other data.
  order = lambda key: (key[0] != "mnist", key[0], key[2], key[1])
  for key in sorted(groups, key=order):
    data, labels, supervised_only = key
    paper = PAPER.get(labels) if data == "mnist" and not supervised_only else None
    members = sorted(groups[key], key=lambda r: r.seed)
    # Finished runs only, once a setting has one: a run a few epochs in is not a seed's result.
    finished = [r for r in members if r.done]
    counted = finished or members
    note = "" if finished else ", unfinished"  # a setting with no runs shows "–" anyway
    seeds = ", ".join(str(r.seed) for r in counted) or "–"
    if finished and len(finished) < len(members):
      left = ", ".join(str(r.seed) for r in members if not r.done)
      seeds += f"; not counted, unfinished: {left}"
    lines.append(
      f"| {data} | {labels} | {_loss(supervised_only)} | "
      f"{f'{paper[0]:g} ± {paper[1]:g}' if paper else '–'} | "
      f"{mean_std((last(r, EMA) for r in counted), note)} | "
      f"{mean_std((last(r, CURRENT) for r in counted), note)} | "
      f"{seeds} | {', '.join(f'{epochs_done(r):g}' for r in members) or '–'} |"
    )
  return "\n".join(lines)


def epoch_table(runs: list[Run], epochs: list[int | str]) -> str:
  """Each run's counts, EMA and current parameters, at the end of each of `epochs`.

  Args:
    runs: the runs, one pair of rows each.
    epochs: epoch numbers (counted from 1), or "last" for a run's last evaluation; an epoch
      a run has not finished, or did not evaluate at, is left blank.
  """
  head = [str(e) for e in epochs]
  lines = [
    "| run, parameters | " + " | ".join(head) + " |",
    "|---|" + "---:|" * len(head),
  ]
  for run in runs:
    for metric, which in ((EMA, "EMA"), (CURRENT, "current")):
      curve = errors(run, metric)
      if curve is None:
        continue
      # Evaluations are logged at steps; an epoch's end is a whole number of its iterations.
      by_epoch = {round(float(e) * run.per_epoch): c for e, c in zip(*curve)}
      cells = []
      for epoch in epochs:
        if epoch == "last":
          cells.append(f"{curve[1][-1]:.0f} (epoch {curve[0][-1]:g})")
        else:
          count = by_epoch.get(int(epoch) * run.per_epoch)
          cells.append("" if count is None else f"{count:.0f}")
      lines.append(f"| {run.name}, {which} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def parse_epochs(text: str) -> list[int | str]:
  """'1,10,last' -> [1, 10, 'last'] (--at_epochs)."""
  epochs: list[int | str] = []
  for item in filter(None, (t.strip() for t in text.split(","))):
    if item == "last":
      epochs.append(item)
    elif item.isdigit() and int(item) > 0:
      epochs.append(int(item))
    else:
      raise ValueError(f"--at_epochs: {item!r} is neither a positive epoch number nor 'last'")
  return epochs


# What --copy_runs keeps of a run: enough to make the tables and figure again.
RECORD_FILES = ("config.json", "metrics.jsonl", "DONE")


def copy_records(runs_dir: str, runs: list[Run], out: str) -> list[str]:
  """Copies each run's RECORD_FILES from runs_dir to out/<run>; returns the folders written."""
  written = []
  for run in runs:
    dest = os.path.join(out, run.name)
    os.makedirs(dest, exist_ok=True)
    for name in RECORD_FILES:
      src, dst = os.path.join(runs_dir, run.name, name), os.path.join(dest, name)
      if os.path.isfile(src):
        # Copying a record folder onto itself (RUNS_DIR = OUT/runs) leaves it as it is.
        if not (os.path.exists(dst) and os.path.samefile(src, dst)):
          shutil.copyfile(src, dst)
      elif os.path.isfile(dst):
        # A DONE marker copied earlier from a run folder that no longer has one.
        os.remove(dst)
    written.append(dest)
  return written


def plot_errors(runs: list[Run], out: str) -> str:
  """Every run's test errors against the epoch (log scale), EMA solid, current dashed."""
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
  for i, run in enumerate(runs):
    color = f"C{i % 10}"
    for metric, style in ((EMA, "-"), (CURRENT, "--")):
      curve = errors(run, metric)
      if curve is not None:
        # A count of 0 has no place on a log axis; 0.5 keeps the point visible below 1.
        epochs, counts = curve
        label = run.name if metric == EMA else None
        ax.plot(epochs, np.maximum(counts, 0.5), style, color=color, lw=1.2, label=label)
  # The paper's 100-label result, the setting run with several seeds.
  ax.axhline(PAPER[100][0], color="grey", ls=":", lw=1, label="paper, MNIST, 100 labels")
  ax.plot([], [], "k-", label="EMA of D's parameters")
  ax.plot([], [], "k--", label="current parameters")
  ax.set_xlabel("epoch")
  ax.set_ylabel("misclassified test images (of 10,000)")
  ax.set_yscale("log")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  ax.set_title("Semi-supervised K+1 GAN: test errors per epoch", fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  fig.savefig(out)
  plt.close(fig)
  return out


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs_dir")
  parser.add_argument(
    "--out", default="docs/semi_supervised", help="folder for table.md and the figure"
  )
  parser.add_argument(
    "--at_epochs",
    default="",
    help="comma-separated epochs (and 'last') for a table of each run's counts at them",
  )
  parser.add_argument(
    "--copy_runs",
    action="store_true",
    help="also copy each run's config.json, metrics.jsonl and DONE marker to OUT/runs/<run>",
  )
  args = parser.parse_args(argv)
  try:
    epochs = parse_epochs(args.at_epochs)
  except ValueError as e:
    parser.error(str(e))
  if args.copy_runs and not args.out:
    parser.error("--copy_runs needs --out")
  runs = read_runs(args.runs_dir)
  if not runs:
    sys.exit(f"no runs of configs/semi_supervised.py with metrics in {args.runs_dir}")
  text = f"{run_table(runs)}\n\n{paper_table(runs)}\n"
  if epochs:
    text += f"\n{epoch_table(runs, epochs)}\n"
  print(text)
  if not args.out:
    return
  os.makedirs(args.out, exist_ok=True)
  if args.copy_runs:
    for folder in copy_records(args.runs_dir, runs, os.path.join(args.out, "runs")):
      print(folder)
  with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
    f.write(text)
  print(os.path.join(args.out, "table.md"))
  print(plot_errors(runs, os.path.join(args.out, "test_errors.png")))


if __name__ == "__main__":
  main()
