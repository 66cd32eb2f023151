"""Test set-up: four fake CPU devices, so data-parallel code paths run on any machine."""

import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import chex  # pylint: disable=g-import-not-at-top

chex.set_n_cpu_devices(4)
