"""The notebooks of colab/ run top to bottom in smoke mode, and their first cells follow the
conventions that make them run on Colab and in CI (colab/README.md).

Each notebook is executed by nbclient in a kernel of its own, on 8 fake CPU devices (a Colab
TPU's core count, so the batch sizes the notebooks pick for 8 devices are exercised), with
GAN_JAX_SMOKE=1. The committed notebook is only read: the executed copy and the runs it trains
go to a temporary folder.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))
NAMES = [os.path.basename(p) for p in NOTEBOOKS]
# Seconds for one notebook in smoke mode, all cells together. They take 30-65 s alone on 2 CPU
# cores; the limit leaves room for a machine busy with the other tests.
NOTEBOOK_TIMEOUT = 300
# Flags of the kernel's JAX: the device count of a Colab TPU, and the tests' cheaper compilation
# (tests/conftest.py; this process has its own, for 4 devices).
KERNEL_XLA_FLAGS = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
# GAN_JAX_TEST_NOTEBOOKS=none skips their execution (a quicker local run); CI executes all.
EXECUTE_NOTEBOOKS = os.environ.get("GAN_JAX_TEST_NOTEBOOKS", "all") != "none"
# The committed notebooks may carry the outputs of a real run (colab/run_all.sh): small ones.
MAX_NOTEBOOK_BYTES = 2_000_000


def _read(path: str) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _code_cells(notebook: dict) -> list[str]:
  return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
  assert len(NOTEBOOKS) >= 6, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_first_cells_follow_the_conventions(name):
  """Parameters first (GAN_JAX_SOURCE, the smoke switch), then the install cell, which installs
  from the checkout or GAN_JAX_SOURCE only when needed and prints the devices first."""
  path = os.path.join(ROOT, "colab", name)
  notebook = _read(path)
  assert notebook["cells"][0]["cell_type"] == "markdown"
  assert "".join(notebook["cells"][0]["source"]).startswith("# ")
  first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
  assert "parameters" in first["metadata"].get("tags", []), "the first code cell is tagged"
  params, setup = _code_cells(notebook)[:2]
  assert 'GAN_JAX_SOURCE = os.environ.get("GAN_JAX_SOURCE", "")' in params
  assert 'SMOKE = os.environ.get("GAN_JAX_SMOKE"' in params
  for needed in ('find_spec("gan_jax")', "pip", "install", "GAN_JAX_SOURCE", "setup.py"):
    assert needed in setup, f"the install cell lacks {needed}"
  prints = [line.strip() for line in setup.splitlines() if line.strip().startswith("print(")]
  assert prints and prints[0] == 'print("devices:", jax.devices())', prints
  # Outputs of a real run are welcome, but small.
  assert os.path.getsize(path) < MAX_NOTEBOOK_BYTES


def _kernel_env(cache: str) -> dict[str, str]:
  # The rest is this process's environment, with the session's shared compilation cache
  # (tests/conftest.py): a program that two notebooks, or a notebook and a command it runs,
  # compile alike is compiled once.
  env = dict(os.environ)
  env.update(
    GAN_JAX_SMOKE="1",
    GAN_JAX_SOURCE=ROOT,  # the kernel runs in a temporary folder, not in colab/
    GAN_JAX_CACHE=cache,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=KERNEL_XLA_FLAGS,
    # This checkout's gan_jax, whatever else is installed: the install cell then skips pip.
    PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p]),
  )
  return env


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory) -> str:
  """A cache folder for the kernels: what the smoke runs write (reference statistics, quickly
  trained classifiers) stays out of the user's cache; the FID Inception weights are the user's
  (`make weights`), linked."""
  from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top

  cache = tmp_path_factory.mktemp("gan_jax_cache")
  weights = os.path.dirname(inception.weights_path())
  if os.path.isdir(weights):
    os.symlink(weights, cache / "weights")
  return str(cache)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_smoke_mode(name, tmp_path, kernel_cache):
  if not EXECUTE_NOTEBOOKS:
    pytest.skip("GAN_JAX_TEST_NOTEBOOKS=none")
  nbclient = pytest.importorskip("nbclient")
  nbformat = pytest.importorskip("nbformat")
  notebook = nbformat.read(os.path.join(ROOT, "colab", name), as_version=4)
  client = nbclient.NotebookClient(
    notebook,
    timeout=NOTEBOOK_TIMEOUT,
    kernel_name="python3",
    resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
  )
  start = time.time()
  try:
    # Any failing cell raises CellExecutionError with its traceback.
    run = client.async_execute(env=_kernel_env(kernel_cache))
    asyncio.run(asyncio.wait_for(run, NOTEBOOK_TIMEOUT))
  finally:
    # The executed copy, for a look at what failed; never the committed file.
    nbformat.write(notebook, str(tmp_path / name))
  seconds = time.time() - start
  print(f"{name}: {seconds:.1f} s in smoke mode", file=sys.stderr)

  setup = [c for c in notebook.cells if c.cell_type == "code"][1]
  text = "".join(o.get("text", "") for o in setup.outputs if o.output_type == "stream")
  devices = [line for line in text.splitlines() if line.startswith("devices:")]
  assert devices and "CpuDevice(id=7)" in devices[0], text
  assert "smoke run" in text
