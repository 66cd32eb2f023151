r"""Markdown table of one or more `bench.py` JSON reports.

  python benchmarks/table.py [--cpu_time] /tmp/bench.json [more.json ...]

One line per (objective, batch size): gan_jax ms/iter and images/s, the peer's ms/iter
(eager, torch.compile), and the ratios peer/gan_jax (> 1: gan_jax is faster). ms/iter are the
medians of the timing windows (wall clock), or with --cpu_time the process CPU time per
iteration (all threads), which a busy shared host distorts less. Standard library only.
"""

from __future__ import annotations

import json
import sys

WALL = "ms_per_iter_median"
CPU = "cpu_ms_per_iter"


def _value(row: dict | None, metric: str) -> float | None:
  if not row or metric not in row:
    return None
  return row[metric]


def _ms(row: dict | None, metric: str) -> str:
  if row and "error" in row:
    return "fails"
  value = _value(row, metric)
  return "-" if value is None else f"{value:.0f}"


def _ratio(peer_row: dict | None, jax_row: dict, metric: str) -> str:
  peer, mine = _value(peer_row, metric), _value(jax_row, metric)
  return "-" if peer is None or not mine else f"{peer / mine:.2f}"


def table(reports: list[dict], metric: str = WALL) -> str:
  """The rows of all reports as one Markdown table, preceded by the devices they ran on."""
  lines = []
  for report in reports:
    device, versions = report["device"], report["versions"]
    peer = report.get("peer") or {}
    lines.append(
      f"- {device['platform']} / {device['device_kind']} "
      f"({device.get('cpu_count')} host cores); jax {versions['jax']}, "
      f"flax {versions['flax']}"
      + (f"; torch {peer['torch_version']} on {peer['device']}" if peer else "")
    )
  what = "wall clock, median of windows" if metric == WALL else "process CPU time"
  lines += [
    "",
    f"ms/iter: {what}; images/s: wall clock.",
    "",
    "| objective | B | n_critic | gan_jax ms/iter | gan_jax images/s | torch eager "
    "ms/iter | torch.compile ms/iter | eager / gan_jax | compile / gan_jax |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for report in reports:
    for row in report["rows"]:
      jax_row, peer = row["jax"], row.get("peer", {})
      images_per_s = row["images_per_iter"] * 1e3 / jax_row[WALL]
      stabilisers = row.get("stabilisers", "none")
      name = row["objective"] + ("" if stabilisers == "none" else f" + {stabilisers}")
      lines.append(
        f"| {name} | {row['batch_size']} | {row['n_critic']} | "
        f"{_ms(jax_row, metric)} | {images_per_s:.1f} | {_ms(peer.get('eager'), metric)} | "
        f"{_ms(peer.get('compile'), metric)} | "
        f"{_ratio(peer.get('eager'), jax_row, metric)} | "
        f"{_ratio(peer.get('compile'), jax_row, metric)} |"
      )
  return "\n".join(lines)


def main(args: list[str]) -> None:
  metric = WALL
  if args and args[0] == "--cpu_time":
    metric, args = CPU, args[1:]
  reports = []
  for path in args:
    with open(path, encoding="utf-8") as f:
      reports.append(json.load(f))
  print(table(reports, metric))


if __name__ == "__main__":
  main(sys.argv[1:])
