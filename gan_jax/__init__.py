"""gan_jax: GAN training-stabilisation methods as pure JAX/Flax functions.

The Python API (docs/api.md):

  import gan_jax
  config = gan_jax.configs.get("wgan_gp_lens", "smoke")
  spec = gan_jax.build_spec(config)                  # static description of the run
  state = gan_jax.init_state(spec, seed=0)           # the TrainState
  step = gan_jax.compile_train_iteration(spec)       # one jitted, donated iteration
  state, metrics = step(state, batch)
  images = gan_jax.sampling.make_sample_fn(spec, state, seed=0)(16)
  gan_jax.metrics.fid(images_a, images_b)            # FID of two uint8 arrays
  gan_jax.train_and_evaluate(config, workdir)        # the whole training run

Subpackages: `core` (terms, phases, controllers, the step, the TrainState), `games`, `losses`,
`stabilisers`, `models`, `data`, `metrics`, `evaluation`, `configs`.
"""

from gan_jax import configs, core, games, losses, metrics, sampling
from gan_jax.core.registry import ConfigError
from gan_jax.spec import RunSpec, build_spec
from gan_jax.train import abstract_state, compile_train_iteration, init_state, train_and_evaluate

__version__ = "0.1.0"

__all__ = [
  "ConfigError",
  "RunSpec",
  "__version__",
  "abstract_state",
  "build_spec",
  "compile_train_iteration",
  "configs",
  "core",
  "games",
  "init_state",
  "losses",
  "metrics",
  "sampling",
  "train_and_evaluate",
]
