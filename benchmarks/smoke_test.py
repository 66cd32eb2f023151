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
    self.assertEqual(report["settings"]["cpu_convolutions"], "eigen")

  def test_cpu_convolutions_flag(self):
    report = self._run("--objectives=non_saturating", "--peer=none", "--cpu_convolutions=ynnpack")
    self.assertEqual(report["settings"]["cpu_convolutions"], "ynnpack")
    self.assertTrue(report["rows"][0]["jax"]["metrics_finite"])

  def test_stabilised_row_is_compared_with_the_plain_one(self):
    report = self._run("--objectives=non_saturating", "--peer=none", "--stabilisers=advas,none")
    plain, advas = report["rows"]
    self.assertEqual((plain["stabilisers"], advas["stabilisers"]), ("none", "advas"))
    # The stabilised iteration alternates its windows with the plain one, in the same run.
    order = [(w["window"], w["side"]) for w in advas["windows"]]
    self.assertEqual(order, [(0, "jax"), (0, "plain"), (1, "plain"), (1, "jax")])
    self.assertAlmostEqual(
      advas["ratio_over_plain"],
      advas["jax"]["ms_per_iter_median"] / advas["plain_alternating"]["ms_per_iter_median"],
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

  @unittest.skipUnless(_peer_available(), "no interpreter with torch")
  def test_bfloat16_rows(self):
    report = self._run(
      "--objectives=non_saturating", "--peer=eager", "--compute_dtypes=float32,bfloat16"
    )
    rows = report["rows"]
    self.assertEqual([r["compute_dtype"] for r in rows], ["float32", "bfloat16"])
    peaks = report["machine_peak"]["gflops_by_dtype"]
    self.assertEqual(sorted(peaks), ["bfloat16", "float32"])
    for row in rows:
      self.assertEqual(row["peer_settings"]["compute_dtype"], row["compute_dtype"])
      self.assertNotIn("error", row["peer"]["eager"])
      self.assertTrue(row["jax"]["metrics_finite"])
      jax_row = row["jax"]
      self.assertAlmostEqual(
        jax_row["fraction_of_peak"], jax_row["gflops_per_s"] / peaks[row["compute_dtype"]]
      )

  @unittest.skipUnless(_peer_available(), "no interpreter with torch")
  def test_began_with_eager_peer(self):
    report = self._run("--objectives=began", "--peer=eager")
    (row,) = report["rows"]
    self.assertEqual((row["objective"], row["images_per_iter"]), ("began", 8))
    self.assertTrue(row["jax"]["metrics_finite"])
    self.assertNotIn("error", row["peer"]["eager"])
    self.assertGreater(row["ratio_peer_over_jax"]["eager"], 0)


@unittest.skipUnless(_peer_available(), "no interpreter with torch")
class PeerNetworksTest(unittest.TestCase):
  """The peer's networks have as many parameters as gan_jax's, layer shapes being the same."""

  def test_parameter_counts(self):
    import jax  # pylint: disable=import-outside-toplevel

    from gan_jax import spec as spec_lib  # pylint: disable=import-outside-toplevel
    from gan_jax import train as train_lib  # pylint: disable=import-outside-toplevel
    from gan_jax.core import parallel  # pylint: disable=import-outside-toplevel

    python = sys.executable if importlib.util.find_spec("torch") else bench.DEFAULT_PEER_PYTHON
    script = (
      "import json, sys, torch\n"
      f"sys.path.insert(0, {_HERE!r})\n"
      "import torch_peer\n"
      "objective, settings = json.loads(sys.argv[1])\n"
      "peer = torch_peer.make_peer(objective, settings, batch_size=2, width=8, image_size=16,"
      " channels=3, device=torch.device('cpu'), channels_last=False, compile_mode=None)\n"
      "count = lambda m: sum(p.numel() for p in m.parameters())\n"
      "print(json.dumps([count(peer.generator), count(peer.discriminator)]))\n"
    )
    for objective in ("non_saturating", "wgan_gp", "began"):
      with self.subTest(objective=objective):
        cfg = bench.make_config(objective, 2, 8, 16, 3)
        spec = spec_lib.build_spec(cfg, mesh=parallel.make_mesh(1))
        params = train_lib.init_state(spec, 0).params
        expected = [
          sum(x.size for x in jax.tree.leaves(params[name]))
          for name in ("generator", "discriminator")
        ]
        arg = json.dumps([objective, bench.peer_settings(objective, cfg)])
        proc = subprocess.run(
          [python, "-c", script, arg], capture_output=True, text=True, check=False, timeout=300
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertEqual(json.loads(proc.stdout), expected)


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


class CpuConvolutionsSmokeTest(unittest.TestCase):
  def test_both_kernels_side_by_side(self):
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, "conv.json")
      proc = subprocess.run(
        [
          sys.executable,
          os.path.join(_HERE, "cpu_convolutions.py"),
          "--layer_batch_sizes=4",
          "--rows=non_saturating:8",
          "--layer_iters=1",
          "--layer_windows=2",
          "--row_iters=1",
          "--row_windows=2",
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
    self.assertEqual(len(report["layers"]), 4)
    for row in report["layers"]:
      for op in ("forward", "kernel_grad", "input_grad"):
        ynn, eigen = row[op]["ynnpack"], row[op]["eigen"]
        self.assertEqual(len(eigen["window_ms"]), 2)
        self.assertAlmostEqual(
          row[op]["ynnpack_over_eigen"], ynn["ms_per_iter_median"] / eigen["ms_per_iter_median"]
        )
        self.assertEqual(len(row[op]["pairs"]), 2)
    (row,) = report["rows"]
    self.assertEqual((row["objective"], row["batch_size"]), ("non_saturating", 8))
    self.assertGreater(row["eigen"]["ms_per_iter"], 0)
    self.assertGreater(row["ynnpack"]["ms_per_iter"], 0)


if __name__ == "__main__":
  unittest.main()
