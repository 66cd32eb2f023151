r"""Markdown table of one or more `bench.py` JSON reports.

  python benchmarks/table.py [--cpu_time] /tmp/bench.json [more.json ...]

One line per (objective, batch size, stabilisers, activation dtype): gan_jax ms/iter and
images/s, the peer's ms/iter (eager, torch.compile), the ratios peer/gan_jax (> 1: gan_jax is
faster) or, for a stabilised row, its cost against the plain one, the GFLOPs of one gan_jax
iteration and the GFLOP/s achieved (% of the machine's matmul peak in the row's dtype,
measured in the same run), and the range of the 1-minute load average over the row's windows.
ms/iter are the medians of the timing windows (wall clock), or with --cpu_time the process CPU
time per iteration (all threads).
Standard library only.
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


def _plain(row: dict) -> str:
  value = row.get("ratio_over_plain")
  return "-" if value is None else f"{value:.2f}"


def _flops(jax_row: dict) -> str:
  """GFLOP per iteration | GFLOP/s achieved (% of the run's matmul peak in the row's dtype)."""
  if not jax_row.get("flops_per_iter"):
    return "- | -"
  rate = jax_row.get("gflops_per_s")
  fraction = jax_row.get("fraction_of_peak")
  achieved = (
    "-"
    if rate is None
    else f"{rate:.1f}" + (f" ({100 * fraction:.0f} %)" if fraction is not None else "")
  )
  return f"{jax_row['flops_per_iter'] / 1e9:.2f} | {achieved}"


def _peaks(machine_peak: dict | None) -> dict[str, float]:
  """dtype -> the run's matmul peak (reports before bfloat16 rows have float32's only)."""
  if not machine_peak:
    return {}
  return machine_peak.get("gflops_by_dtype") or {"float32": machine_peak["gflops"]}


def _load(row: dict) -> str:
  loads = [w["load_1min"] for w in row.get("windows", []) if w.get("load_1min") is not None]
  return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "-"


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
      + "".join(
        f"; {dtype} matmul peak {gflops:.0f} GFLOP/s"
        for dtype, gflops in _peaks(report.get("machine_peak")).items()
      )
    )
  what = "wall clock, median of windows" if metric == WALL else "process CPU time"
  lines += [
    "",
    f"ms/iter: {what}; images/s: wall clock.",
    "",
    "| objective | B | n_critic | gan_jax ms/iter | gan_jax images/s | torch eager "
    "ms/iter | torch.compile ms/iter | eager / gan_jax | compile / gan_jax | × plain | "
    "GFLOP/iter | GFLOP/s (% of peak) | load |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for report in reports:
    for row in report["rows"]:
      jax_row, peer = row["jax"], row.get("peer", {})
      images_per_s = row["images_per_iter"] * 1e3 / jax_row[WALL]
      stabilisers = row.get("stabilisers", "none")
      name = row["objective"] + ("" if stabilisers == "none" else f" + {stabilisers}")
      if row.get("compute_dtype", "float32") != "float32":
        name += f" ({row['compute_dtype']})"
      lines.append(
        f"| {name} | {row['batch_size']} | {row['n_critic']} | "
        f"{_ms(jax_row, metric)} | {images_per_s:.1f} | {_ms(peer.get('eager'), metric)} | "
        f"{_ms(peer.get('compile'), metric)} | "
        f"{_ratio(peer.get('eager'), jax_row, metric)} | "
        f"{_ratio(peer.get('compile'), jax_row, metric)} | "
        f"{_plain(row)} | {_flops(jax_row)} | {_load(row)} |"
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
