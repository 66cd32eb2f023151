r"""Table, correlation and figures of the BEGAN runs of experiments/began.sh.

  python experiments/began_summary.py RUNS_DIR --out=docs/began

Prints a Markdown table with one row per run (γ, final and best classifier FID, modes on the
stacked set, the averages of k_t and of the achieved ratio L(G(z))/L(x) over the last 500
iterations, the final M_global and learning-rate factor), then how well M_global tracks the
classifier FID (BEGAN Sec. 4: "this measure correlates well with image fidelity"): at each
evaluation, M_global averaged over the iterations since the previous evaluation against the
FID, as Pearson and Spearman coefficients per run and pooled per dataset. With --out it also
writes M_global and FID curves per dataset, an M_global-FID scatter plot and each run's last
sample grid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import summarise  # pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax.evaluation import plots  # pylint: disable=g-import-not-at-top,wrong-import-position

FID = "eval/classifier_fid"
M_GLOBAL = "began/m_global"


class Run(NamedTuple):
  setting: str
  path: str
  config: dict[str, Any]
  data: str  # dataset, "stacked_" prefixed for the stacked variant
  series: plots.Series


def pairs(series, metric: str = FID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(evaluation steps, M_global averaged over each evaluation's preceding interval, metric)."""
  eval_steps, values = series[metric]
  steps, m_global = series[M_GLOBAL]
  means, keep = [], []
  previous = -np.inf
  for i, step in enumerate(eval_steps):
    window = (steps > previous) & (steps <= step)
    previous = step
    if window.any():
      means.append(m_global[window].mean())
      keep.append(i)
  return eval_steps[keep], np.asarray(means), values[keep]


def correlation(x: np.ndarray, y: np.ndarray) -> str:
  """'Pearson r (p), Spearman ρ (p), n' or '–' below three points."""
  if len(x) < 3:
    return "–"
  r, p = stats.pearsonr(x, y)
  rho, q = stats.spearmanr(x, y)
  return f"r = {r:.2f} (p {p:.2g}), ρ = {rho:.2f} (p {q:.2g}), n = {len(x)}"


def _tail_mean(series, metric: str, last: int = 500) -> float:
  steps, values = series[metric]
  return float(values[steps > steps[-1] - last].mean())


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs_dir")
  parser.add_argument("--out", default="", help="folder for figures and sample grids")
  args = parser.parse_args(argv)
  unfinished: list[str] = []
  groups = summarise.collect(args.runs_dir, unfinished)
  # Each run's metrics and config are read once, for the table and the figures.
  runs = {}
  for setting, seeds in sorted(groups.items()):
    for seed, path in sorted(seeds.items()):
      with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
      data = ("stacked_" if config["data"]["stacked"] else "") + config["data"]["name"]
      runs[f"{setting}_s{seed}"] = Run(setting, path, config, data, plots.read_metrics(path))
  print(
    "| run | γ | N_h / N_z | steps | final FID | best FID | final modes | k_t (last 500) "
    "| L(G(z))/L(x) (last 500) | final M_global | lr factor | M_global vs FID |"
  )
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  pooled: dict[str, list[np.ndarray]] = {}
  points = {}  # run name -> (M_global, FID) at its evaluations, for the table and the scatter
  for name, run in runs.items():
    config, data, series = run.config, run.data, run.series
    points[name] = pairs(series)
    _, m, fid = points[name]
    pooled.setdefault(data, []).append(np.stack([m, fid]))
    modes = series.get("eval/modes")
    print(
      f"| {name} | {config['objective']['gamma']} | {config['model']['hidden_dim']} / "
      f"{config['model']['z_dim']} | {int(series[M_GLOBAL][0][-1])} | {fid[-1]:.1f} | "
      f"{fid.min():.1f} | {int(modes[1][-1]) if modes else '–'} | "
      f"{_tail_mean(series, 'began/k'):.4f} | {_tail_mean(series, 'began/ratio'):.3f} | "
      f"{series[M_GLOBAL][1][-1]:.4f} | {series['began/lr_scale'][1][-1]:g} | "
      f"{correlation(m, fid)} |"
    )
  print()
  for data, chunks in sorted(pooled.items()):
    m, fid = np.concatenate(chunks, axis=1)
    print(f"Pooled over the {data} runs: {correlation(m, fid)}")
  if unfinished:
    print(f"\nNot finished (left out): {', '.join(unfinished)}")
  if not args.out:
    return
  os.makedirs(args.out, exist_ok=True)
  by_data: dict[str, dict[str, list[plots.Series]]] = {}
  for run in runs.values():
    by_data.setdefault(run.data, {}).setdefault(run.setting, []).append(run.series)
  for data, settings in by_data.items():
    print(
      plots.plot_panels(
        settings, [M_GLOBAL, FID], os.path.join(args.out, f"{data}.png"), log_y=True
      )
    )
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
  for name, (_, m, fid) in points.items():
    ax.plot(m, fid, "o-", ms=3, label=name)
  ax.set_xlabel("M_global (mean since the previous evaluation)")
  ax.set_ylabel(FID)
  ax.set_yscale("log")
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "m_global_vs_fid.png"))
  plt.close(fig)
  for name, run in runs.items():
    grids = sorted(os.listdir(os.path.join(run.path, "samples")))
    if grids:
      shutil.copy(
        os.path.join(run.path, "samples", grids[-1]), os.path.join(args.out, f"{name}.png")
      )


if __name__ == "__main__":
  main()
