r"""Smoke test of the benchmark CLI: tiny networks, a couple of iterations, JSON checked.

  python benchmarks/smoke_test.py        # or: python -m pytest benchmarks/smoke_test.py

Not part of tests/ (the benchmark is a tool, and its peer needs torch); it runs in well under a
minute on a CPU. The PyTorch peer is included when an interpreter with torch is found.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import bench

TINY = ["--batch_sizes=8", "--width=8", "--image_size=16", "--iters=2", "--warmup=1", "--windows=2"]


def _peer_available() -> bool:
  if importlib.util.find_spec("torch") is not None:
    return True
  return os.path.exists(bench.DEFAULT_PEER_PYTHON)


class BenchSmokeTest(unittest.TestCase):
  def _run(self, *args: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, "bench.json")
      # Unoptimised XLA code generation compiles in a fraction of the time; this test checks
      # the CLI and its output, not speed.
      env = {
        **os.environ,
        "XLA_FLAGS": (
          os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
        ).strip(),
      }
      proc = subprocess.run(
        [sys.executable, os.path.join(_HERE, "bench.py"), *TINY, *args, f"--out={out}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
      )
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      with open(out, encoding="utf-8") as f:
        report = json.load(f)
    # stdout carries the same document.
    self.assertEqual(json.loads(proc.stdout)["rows"], report["rows"])
    return report

  def test_jax_only(self):
    report = self._run("--objectives=non_saturating", "--peer=none")
    self.assertEqual(report["device"]["platform"], "cpu")
    (row,) = report["rows"]
    self.assertEqual(
      (row["objective"], row["batch_size"], row["images_per_iter"]), ("non_saturating", 8, 8)
    )
    jax_row = row["jax"]
    self.assertGreater(jax_row["ms_per_iter"], 0)
    self.assertEqual(len(jax_row["window_ms"]), 2)
    self.assertTrue(jax_row["metrics_finite"])
    self.assertNotIn("peer", row)
    # Distance to the machine's limit: XLA's FLOPs, the rate, the matmul peak of the run.
    self.assertGreater(jax_row["flops_per_iter"], 0)
    self.assertAlmostEqual(
      jax_row["gflops_per_s"], jax_row["flops_per_iter"] / jax_row["ms_per_iter_median"] / 1e6
    )
    self.assertEqual(len(report["machine_peak"]["measurements"]), 2)
    self.assertGreater(report["machine_peak"]["gflops"], jax_row["gflops_per_s"])

  def test_stabilised_row_is_compared_with_the_plain_one(self):
    report = self._run("--objectives=non_saturating", "--peer=none", "--stabilisers=none,advas")
    plain, advas = report["rows"]
    self.assertEqual((plain["stabilisers"], advas["stabilisers"]), ("none", "advas"))
    self.assertAlmostEqual(
      advas["ratio_over_plain"],
      advas["jax"]["ms_per_iter_median"] / plain["jax"]["ms_per_iter_median"],
    )

  @unittest.skipUnless(_peer_available(), "no interpreter with torch")
  def test_with_eager_peer(self):
    report = self._run("--objectives=wgan_gp", "--peer=eager")
    (row,) = report["rows"]
    self.assertEqual(row["images_per_iter"], 5 * 8)  # n_critic = 5 real batches
    self.assertNotIn("peer_error", row)
    peer = row["peer"]["eager"]
    self.assertNotIn("error", peer)
    self.assertGreater(peer["ms_per_iter"], 0)
    self.assertGreater(row["ratio_peer_over_jax"]["eager"], 0)
    self.assertEqual(report["peer"]["framework"], "torch")
    # The two sides took turns, window by window, the first of each round rotating, with the
    # host's load recorded before each window.
    order = [(w["window"], w["side"]) for w in row["windows"]]
    self.assertEqual(order, [(0, "jax"), (0, "eager"), (1, "eager"), (1, "jax")])
    self.assertTrue(all(w["load_1min"] is not None for w in row["windows"]))
    self.assertEqual(peer["window_ms"], [w["ms_per_iter"] for w in row["windows"][1:3]])


class ConvChunksSmokeTest(unittest.TestCase):
  def test_whole_and_chunked_sides(self):
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, "chunks.json")
      proc = subprocess.run(
        [
          sys.executable,
          os.path.join(_HERE, "conv_chunks.py"),
          "--layer_batch_sizes=4",
          "--rows=non_saturating:8",
          "--layer_iters=1",
          "--layer_windows=2",
          "--row_iters=1",
          "--row_windows=2",
          "--chunk_elements=4096",  # every layer in chunks
          f"--out={out}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0"},
      )
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      with open(out, encoding="utf-8") as f:
        report = json.load(f)
    self.assertEqual(report["chunk_elements"], 4096)
    self.assertEqual(len(report["layers"]), 4)
    for row in report["layers"]:
      self.assertEqual(row["chunks"], [1, 4])  # one device, one example per chunk
      for grad in ("kernel_grad", "input_grad"):
        whole, chunked = row[grad]["whole"], row[grad]["chunked"]
        self.assertEqual(len(whole["window_ms"]), 2)
        self.assertAlmostEqual(
          row[grad]["whole_over_chunked"],
          whole["ms_per_iter_median"] / chunked["ms_per_iter_median"],
        )
    (row,) = report["rows"]
    self.assertEqual((row["objective"], row["batch_size"]), ("non_saturating", 8))
    self.assertGreater(row["whole"]["ms_per_iter"], 0)
    self.assertGreater(row["chunked"]["ms_per_iter"], 0)


if __name__ == "__main__":
  unittest.main()
