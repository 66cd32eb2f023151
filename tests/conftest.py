"""Test set-up: four fake CPU devices, so data-parallel code paths run on any machine."""

import atexit
import os
import shutil
import tempfile

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compilation is most of the suite's time (tiny networks, a few steps each): XLA:CPU's backend
# optimisation is switched off (its LLVM passes took about a third of the time; results agree
# to float32 rounding, which every comparison of values allows), and compiled programs are
# shared through JAX's persistent cache between the tests, the two workers and the
# subprocesses they start. GAN_JAX_TEST_FULL_COMPILE=1 keeps XLA's defaults.
if os.environ.get("GAN_JAX_TEST_FULL_COMPILE", "") in ("", "0"):
  if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
  if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # One fresh cache per session: made by the first process (pytest's, before its workers
    # start, which inherit the variable) and removed when that process exits.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gan_jax_tests_jax_cache_")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
import chex  # pylint: disable=g-import-not-at-top

chex.set_n_cpu_devices(4)
