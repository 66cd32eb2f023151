r"""CycleGAN digits <-> MNIST runs, two generators against the shared encoder, as tables.

  python experiments/cyclegan_summary.py RUNS_DIR [--bench=FILE.json] [--out=docs/cyclegan]

Reads every CycleGAN run folder of RUNS_DIR (those of experiments/cyclegan.sh, or any run of
configs/cyclegan.py: variant and seed come from its config.json; unfinished runs are marked)
and prints Markdown tables:

- one row per run: variant, seed, steps done, the last evaluation's label preservation in both
  directions (G: digits -> MNIST judged by the MNIST classifier, F: MNIST -> digits by the
  digits classifier), classifier FID of each domain, images translated, and ms per iteration
  from the median of the logged perf/steps_per_sec (each run timed alone, one after another);
- per variant, the mean ± std over the seeds of its finished runs;
- with --bench, the side-by-side timing and parameter counts of
  benchmarks/cyclegan_variants.py.

The values are the last evaluation's, never the best of a run. With --out the tables also go
to OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

METRICS = (
  ("eval/label_preservation_xy", "labels kept G: X→Y", "{:.3f}"),
  ("eval/label_preservation_yx", "labels kept F: Y→X", "{:.3f}"),
  ("eval/classifier_fid_y", "classifier FID of G(x) vs Y", "{:.2f}"),
  ("eval/classifier_fid_x", "classifier FID of F(y) vs X", "{:.2f}"),
)


def read_runs(runs_dir: str) -> list[dict]:
  runs = []
  for name in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, name)
    config_path = os.path.join(path, "config.json")
    metrics_path = os.path.join(path, "metrics.jsonl")
    if not (os.path.isfile(config_path) and os.path.isfile(metrics_path)):
      continue
    with open(config_path, encoding="utf-8") as f:
      config = json.load(f)
    if config.get("game") != "cyclegan":
      continue
    with open(metrics_path, encoding="utf-8") as f:
      records = [json.loads(line) for line in f if line.strip()]
    evals = [r for r in records if "eval/label_preservation_xy" in r]
    rates = [r["perf/steps_per_sec"] for r in records if "perf/steps_per_sec" in r]
    runs.append(
      dict(
        name=name,
        variant="shared encoder" if config["model"]["shared_encoder"] else "two generators",
        seed=config["seed"],
        steps=max((r["step"] for r in records), default=0),
        target=config["train"]["steps"],
        last=evals[-1] if evals else {},
        # The first log window includes compilation: left out of the median.
        ms=1e3 / float(np.median(rates[1:] or rates)) if rates else float("nan"),
        done=os.path.isfile(os.path.join(path, "DONE")),
      )
    )
  return runs


def tables(runs: list[dict], bench: dict | None) -> str:
  head = ["run", "variant", "seed", "steps"] + [m[1] for m in METRICS] + ["translated", "ms/iter"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in runs:
    steps = f"{r['steps']}" + ("" if r["done"] else f" of {r['target']} (unfinished)")
    vals = [fmt.format(r["last"][k]) if k in r["last"] else "–" for k, _, fmt in METRICS]
    translated = r["last"].get("eval/translated_xy"), r["last"].get("eval/translated_yx")
    n = "–" if translated[0] is None else f"{int(translated[0])} / {int(translated[1])}"
    row = [r["name"], r["variant"], str(r["seed"]), steps] + vals + [n, f"{r['ms']:.0f}"]
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "| variant | seeds | " + " | ".join(m[1] for m in METRICS) + " | ms/iter |"]
  lines.append("|" + "---|" * (len(METRICS) + 3))
  for variant in sorted({r["variant"] for r in runs}, reverse=True):
    group = [r for r in runs if r["variant"] == variant and r["last"] and r["done"]]
    if not group:
      continue
    cells = []
    for k, _, fmt in METRICS:
      x = np.array([r["last"][k] for r in group])
      cells.append(f"{fmt.format(x.mean())} ± {fmt.format(x.std(ddof=1) if len(x) > 1 else 0)}")
    ms = np.array([r["ms"] for r in group])
    seeds = ",".join(str(r["seed"]) for r in group)
    lines.append(
      f"| {variant} | {seeds} | " + " | ".join(cells) + f" | {ms.mean():.0f} ± {ms.std():.0f} |"
    )
  # Constants of the data and the judges (the same in every run that reports them).
  baseline = next(
    (r["last"] for r in runs if any(k.endswith("_untranslated") for k in r["last"])), {}
  )
  if baseline:
    lines += ["", "Baselines (the same test images and judges in every run):", ""]
    for key, label in (
      ("eval/classifier_accuracy_y", "MNIST classifier on MNIST test images"),
      ("eval/classifier_accuracy_x", "digits classifier on digits test images"),
      ("eval/label_preservation_xy_untranslated", "labels kept by no translation, X→Y"),
      ("eval/label_preservation_yx_untranslated", "labels kept by no translation, Y→X"),
      ("eval/classifier_fid_y_untranslated", "classifier FID of untranslated x vs Y"),
      ("eval/classifier_fid_x_untranslated", "classifier FID of untranslated y vs X"),
    ):
      if key in baseline:
        lines.append(f"- {label}: {baseline[key]:.3f}")
  if bench:
    s = bench["settings"]
    lines += [
      "",
      f"Side by side in one process ({s['windows']} alternating windows of "
      f"{s['iters_per_window']} iterations, batch {s['batch_size']}, width {s['width']}, "
      f"{s['image_size']} px, {bench['device']['kind']}, load average before "
      f"{bench['load_average_before']} after {bench['load_average_after']}):",
      "",
      "| variant | generator params | discriminator params | ms/iter (median) | windows (ms) |",
      "|---|---|---|---|---|",
    ]
    for name, row in bench["variants"].items():
      windows = ", ".join(f"{w:.0f}" for w in row["window_ms"])
      lines.append(
        f"| {name} | {row['generator_params']:,} | {row['discriminator_params']:,} | "
        f"{row['ms_per_iter_median']:.1f} | {windows} |"
      )
    ratio = bench["shared_over_full"]
    lines += [
      "",
      f"shared / full: generator parameters {ratio['generator_params']:.3f}, "
      f"ms per iteration {ratio['ms_per_iter']:.3f}.",
    ]
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs_dir")
  parser.add_argument("--bench", default="", help="benchmarks/cyclegan_variants.py JSON output")
  parser.add_argument("--out", default="", help="folder for table.md (empty: print only)")
  args = parser.parse_args()
  bench = None
  if args.bench:
    with open(args.bench, encoding="utf-8") as f:
      bench = json.load(f)
  text = tables(read_runs(args.runs_dir), bench)
  print(text)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
      f.write(text)


if __name__ == "__main__":
  main()
