r"""Table and curves of an experiment grid whose runs are named <setting>_s<seed>.

  python experiments/summarise.py RUNS_DIR --out=docs/results --metric=eval/classifier_fid

Prints a Markdown table with one row per setting: the number of seeds, the final and the best
value of the metric (mean ± std over seeds, and each seed's value), the step of the best value,
how many runs trained at all (final value below --trained_below, or --trained_below_stacked for
settings on stacked data, whose metric has another scale), and for stacked data the
modes covered at the end; writes one PNG per dataset and metric with every setting's mean curve
and min-max band over seeds (`gan_jax.evaluation.plots`).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax.evaluation import plots  # pylint: disable=g-import-not-at-top,wrong-import-position

# Each run's metrics.jsonl is parsed once, for the table and the choice of figures.
_read_metrics = functools.cache(plots.read_metrics)
_RUN = re.compile(r"^(?P<setting>.+)_s(?P<seed>\d+)$")
_SETTING = re.compile(r"^(?P<objective>.+?)_(?P<variant>plain|lens|advas|mbd)_(?P<data>.+)$")


def _fmt(values, digits=1):
  values = np.asarray(values, float)
  if values.size == 0:
    return "–"
  if values.size == 1:
    return f"{values[0]:.{digits}f}"
  return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def collect(runs_dir: str, unfinished: list[str] | None = None) -> dict[str, dict[int, str]]:
  """{setting: {seed: run folder}} of the finished runs (those with a DONE file, which
  experiments/lens_advas.sh writes); the names of the others are appended to `unfinished`."""
  groups: dict[str, dict[int, str]] = collections.defaultdict(dict)
  for name in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, name)
    match = _RUN.match(name)
    if match and os.path.isfile(os.path.join(path, "metrics.jsonl")):
      if os.path.isfile(os.path.join(path, "DONE")):
        groups[match["setting"]][int(match["seed"])] = path
      elif unfinished is not None:
        unfinished.append(name)
  return dict(groups)


def table(
  groups,
  metric: str,
  trained_below: float,
  trained_below_stacked: float,
  modes_metric: str = "eval/modes",
) -> str:
  """The Markdown table (see the module docstring)."""
  lines = [
    f"| setting | seeds | final {metric} | best {metric} | best at step | final per seed "
    f"| trained (final < {trained_below:g}; stacked < {trained_below_stacked:g}) "
    "| final modes | steps | median it/s |",
    "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
  ]
  for setting, seeds in sorted(groups.items()):
    finals, bests, best_steps, modes, last_steps, per_seed, rates = [], [], [], [], [], [], []
    for seed, path in sorted(seeds.items()):
      series = _read_metrics(path)
      if metric not in series:
        continue
      steps, values = series[metric]
      finals.append(values[-1])
      bests.append(np.nanmin(values))
      best_steps.append(int(steps[int(np.nanargmin(values))]))
      last_steps.append(int(steps[-1]))
      per_seed.append(f"s{seed}: {values[-1]:.1f}")
      if modes_metric in series:
        modes.append(series[modes_metric][1][-1])
      if "perf/steps_per_sec" in series:
        rates.append(np.median(series["perf/steps_per_sec"][1]))
    if not finals:
      continue
    threshold = trained_below_stacked if "stacked" in setting else trained_below
    trained = sum(bool(v < threshold) for v in finals)
    lines.append(
      f"| {setting} | {len(finals)} | {_fmt(finals)} | {_fmt(bests)} | "
      f"{'/'.join(map(str, best_steps))} | {', '.join(per_seed)} | "
      f"{trained}/{len(finals)} | {_fmt(modes, 0) if modes else '–'} | "
      f"{'/'.join(map(str, sorted(set(last_steps))))} | "
      f"{np.median(rates) if rates else float('nan'):.2f} |"
    )
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs_dir")
  parser.add_argument("--metric", default="eval/classifier_fid")
  parser.add_argument(
    "--trained_below",
    type=float,
    default=100.0,
    help="a run 'trained at all' if its final metric is below this",
  )
  parser.add_argument(
    "--trained_below_stacked",
    type=float,
    default=1000.0,
    help="--trained_below for settings on stacked data",
  )
  parser.add_argument("--out", default="", help="folder for the curves (none if empty)")
  args = parser.parse_args(argv)
  unfinished = []
  groups = collect(args.runs_dir, unfinished)
  print(table(groups, args.metric, args.trained_below, args.trained_below_stacked))
  if unfinished:
    print(f"\nNot finished (left out): {', '.join(unfinished)}")
  if args.out:
    by_data = collections.defaultdict(dict)
    for setting, seeds in groups.items():
      # Settings are <objective>_<variant>_<dataset>; one figure per objective and dataset.
      match = _SETTING.match(setting)
      key = f"{match['objective']}_{match['data']}" if match else setting
      by_data[key][setting] = list(seeds.values())
    for name, settings in sorted(by_data.items()):
      for metric in (args.metric, "eval/modes"):
        paths = [p for s in settings.values() for p in s]
        if not any(metric in _read_metrics(p) for p in paths):
          continue
        out = os.path.join(args.out, f"{name}_{metric.split('/')[-1]}.png")
        plots.plot(
          {s: [_read_metrics(p) for p in runs] for s, runs in settings.items()}, [metric], out
        )
        print(out)


if __name__ == "__main__":
  main()
