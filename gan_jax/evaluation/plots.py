r"""Metric curves of one or more runs as PNG files.

Reads each run's `metrics.jsonl` (one JSON object per line: {"step": t, "<metric>": value}),
groups runs into labelled series (several seeds of one setting), and draws, per metric, the
mean over a series' runs against the step with a shaded band (min-max by default, or ±1 std).

  python -m gan_jax.evaluation.plots runs/dcgan_s0 runs/dcgan_s1 runs/wgan_s0 --metrics=eval/fid
  python -m gan_jax.evaluation.plots dcgan=runs/dcgan_s0,runs/dcgan_s1 wgan=runs/wgan_s* \
      --band=std --out=plots/

Without an explicit LABEL=, a run's label is its folder name with a trailing seed suffix
(`_s0`, `-seed1`, `_seed=2`) removed, so seeds of one setting share a curve.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from absl import flags

from gan_jax import cli as cli_lib

# This tool's own flag set, apart from absl's global one: other tools also define --metrics
# and --out.
FLAGS = flags.FlagValues()
flags.DEFINE_list(
  "metrics",
  [],
  "comma-separated metric names (default: all eval/* metrics, else all)",
  flag_values=FLAGS,
)
flags.DEFINE_string("out", "plots", "output folder, or a .png for one metric", flag_values=FLAGS)
flags.DEFINE_enum(
  "band",
  "minmax",
  ("minmax", "std"),
  "shaded band: min-max over a series' runs, or the mean ± 1 std",
  flag_values=FLAGS,
)
flags.DEFINE_bool("log_y", False, "logarithmic y axis", flag_values=FLAGS)
flags.DEFINE_bool(
  "panels", False, "all --metrics side by side in the one PNG --out", flag_values=FLAGS
)

_SEED_SUFFIX = re.compile(r"[_\-.]?(s|seed)[_=\-]?\d+$")


# {metric: (steps, values)}, one run's logged metrics.
Series = Mapping[str, tuple[np.ndarray, np.ndarray]]


def read_metrics(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{metric: (steps, values)} of a run's metrics.jsonl, sorted by step; for a step logged
  more than once (a resumed run) the last value wins. Non-numeric fields are skipped."""
  path = workdir if workdir.endswith(".jsonl") else os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found; pass run folders that contain metrics.jsonl")
  series: dict[str, dict[int, float]] = {}
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        # A run killed mid-write leaves a partial last line; anything else is an error.
        if line_no == 1 or f.read().strip():
          raise ValueError(f"{path}:{line_no} is not a JSON object") from None
        break
      if "step" not in record:
        continue
      step = int(record["step"])
      for k, v in record.items():
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
          series.setdefault(k, {})[step] = float(v)
  return {k: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for k, d in series.items()}


def default_label(workdir: str) -> str:
  """A run folder's name without a trailing seed suffix."""
  name = os.path.basename(os.path.normpath(workdir))
  return _SEED_SUFFIX.sub("", name) or name


def parse_runs(specs: Sequence[str]) -> dict[str, list[str]]:
  """["LABEL=dir1,dir2", "dir3", "glob*"] -> {label: [run folders]} in order of appearance."""
  groups: dict[str, list[str]] = {}
  for spec in specs:
    label, sep, rest = spec.partition("=")
    paths = rest.split(",") if sep and not os.path.exists(spec) else [spec]
    expanded = []
    for p in paths:
      matches = sorted(glob.glob(p))
      expanded += matches or [p]
    for p in expanded:
      groups.setdefault(label if sep and not os.path.exists(spec) else default_label(p), []).append(
        p
      )
  return groups


def aggregate(
  runs: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]], metric: str, band: str = "minmax"
) -> tuple[np.ndarray, ...] | None:
  """(steps, mean, low, high, count) over the runs that logged `metric`, at each step any of
  them logged it (each run contributes where it has a value). None if no run has it."""
  have = [r[metric] for r in runs if metric in r]
  if not have:
    return None
  steps = np.unique(np.concatenate([s for s, _ in have]))
  table = np.full((len(have), len(steps)), np.nan)
  for i, (s, v) in enumerate(have):
    table[i, np.searchsorted(steps, s)] = v
  count = np.sum(~np.isnan(table), 0)
  mean = np.nanmean(table, 0)
  if band == "std":
    std = np.nanstd(table, 0)
    low, high = mean - std, mean + std
  elif band == "minmax":
    low, high = np.nanmin(table, 0), np.nanmax(table, 0)
  else:
    raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
  return steps, mean, low, high, count


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend, imported on first use."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def _draw(ax, data, metric: str, band: str, log_y: bool) -> None:
  """One metric's curves, a line per series (mean over its runs) with a shaded band."""
  for label, runs in data.items():
    agg = aggregate(runs, metric, band)
    if agg is None:
      continue
    steps, mean, low, high, _ = agg
    n_runs = sum(metric in r for r in runs)
    (line,) = ax.plot(steps, mean, label=f"{label} (n={n_runs})")
    if n_runs > 1:
      ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
  ax.set_xlabel("step")
  ax.set_ylabel(metric)
  if log_y:
    ax.set_yscale("log")
  spread = "min-max" if band == "minmax" else "±1 std"
  ax.set_title(f"{metric} (mean over runs, band: {spread})", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)


def _series(groups: Mapping[str, Sequence[str | Series]]) -> dict[str, list[Series]]:
  """{label: [series]}: run folders are read, series already read by the caller pass through."""
  return {
    label: [read_metrics(r) if isinstance(r, str) else r for r in runs]
    for label, runs in groups.items()
  }


def plot_panels(
  groups: Mapping[str, Sequence[str | Series]],
  metrics: Sequence[str],
  out: str,
  band: str = "minmax",
  log_y: bool = False,
) -> str:
  """Writes the metrics side by side into the one PNG `out`; returns its path.

  `groups` maps a label to its runs: run folders, or `read_metrics` results.
  """
  plt = pyplot()
  data = _series(groups)
  fig, axes = plt.subplots(
    1, len(metrics), figsize=(5.2 * len(metrics), 3.8), dpi=110, squeeze=False
  )
  for ax, metric in zip(axes[0], metrics):
    _draw(ax, data, metric, band, log_y)
  fig.tight_layout()
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  fig.savefig(out)
  plt.close(fig)
  return out


def plot(
  groups: Mapping[str, Sequence[str | Series]],
  metrics: Sequence[str] | None,
  out: str,
  band: str = "minmax",
  log_y: bool = False,
) -> list[str]:
  """Writes one PNG per metric into the folder `out` (or one file, if `out` ends in .png
  and there is one metric); returns the written paths. `groups` as for `plot_panels`."""
  plt = pyplot()
  data = _series(groups)
  available = sorted({m for runs in data.values() for r in runs for m in r})
  if metrics:
    missing = [m for m in metrics if m not in available]
    if missing:
      raise ValueError(
        f"metrics {missing} are in no run's metrics.jsonl; available: {', '.join(available)}"
      )
  else:
    metrics = [m for m in available if m.startswith("eval/")] or available
  single = out.endswith(".png")
  if single and len(metrics) != 1:
    raise ValueError(
      f"--out={out} is one file but {len(metrics)} metrics are plotted; pass "
      "a folder or one --metrics"
    )
  written = []
  for metric in metrics:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    _draw(ax, data, metric, band, log_y)
    fig.tight_layout()
    path = out if single else os.path.join(out, re.sub(r"[^\w.-]+", "_", metric) + ".png")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
  return written


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def main(argv: Sequence[str]) -> None:
  """Draws the runs named in argv[1:] (LABEL=dir1,dir2 or folders) with the parsed FLAGS and
  prints {"written": [paths]}; exits with code 2 and `error: <message>` on bad input."""
  if len(argv) < 2:
    _fail("pass one or more runs: folders (or metrics.jsonl files), optionally LABEL=dir1,dir2")
  metrics = [m for m in FLAGS.metrics if m] or None
  try:
    if FLAGS.panels:
      if not metrics or not FLAGS.out.endswith(".png"):
        raise ValueError("--panels needs --metrics and an --out ending in .png")
      written = [plot_panels(parse_runs(argv[1:]), metrics, FLAGS.out, FLAGS.band, FLAGS.log_y)]
    else:
      written = plot(parse_runs(argv[1:]), metrics, FLAGS.out, FLAGS.band, FLAGS.log_y)
  except (FileNotFoundError, ValueError) as e:
    _fail(str(e))
  print(json.dumps({"written": written}))


def cli(argv: Sequence[str]) -> None:
  """Parses a command line (program name first, e.g. sys.argv) and runs `main`."""
  cli_lib.cli(main, FLAGS, argv)


if __name__ == "__main__":
  cli_lib.run_app(main, FLAGS, __doc__)
