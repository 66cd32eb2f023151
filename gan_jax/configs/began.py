r"""BEGAN (Berthelot et al. 2017): auto-encoder D, equilibrium controller k_t, M_global.

  python main.py --config=configs/began.py --workdir=runs/began
  python main.py --config=configs/began.py:stacked_fashion_mnist --workdir=runs/began_stacked \
      --config.objective.gamma=0.7
  python main.py --config=configs/began.py --workdir=runs/began_vr \
      --config.stabilisers=vanishing_residual --config.model.skip=True

Paper defaults: Adam(1e-4) for D and G (β1 0.5 as the public code), batch 16, z ~ U[-1, 1],
N_h = N_z = 64, η = 1, γ = 0.5, λ_k = 0.001, k_0 = 0, learning rate halved when M_global
stalls. The paper's n is 64 or 128; 32x32 images (Fashion-MNIST is padded from 28x28).
"""

import ml_collections

from gan_jax.configs import dcgan, presets


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = dcgan.get_config()

  config.model = ml_collections.ConfigDict()
  config.model.name = "began"  # Auto-encoder D and decoder G (gan_jax.models.began).
  config.model.width = 64  # n: decoder filters; encoder scale i has (i + 1)·n.
  config.model.hidden_dim = 64  # N_h: D's embedding size.
  config.model.z_dim = 64  # N_z: noise dimension.
  config.model.z_dist = "uniform"  # z ~ U[-1, 1] (Sec. 3.4).
  config.model.eta = 1  # η of L(v) = |v - D(v)|^η: 1 or 2.
  config.model.skip = False  # Skip connections: h0 upsampled after every upsampling.
  config.model.init = "xavier"  # Initialiser: xavier (as TF's default) or normal.

  config.objective = ml_collections.ConfigDict()
  config.objective.name = "began"  # L_D = L(x) - k_t L(G(z_D)), L_G = L(G(z_G)).
  config.objective.gamma = 0.5  # γ, the diversity ratio E[L(G(z))] / E[L(x)].
  config.objective.lambda_k = 0.001  # λ_k, the gain of k_t's proportional control.
  config.objective.k_init = 0.0  # k_0.
  # Learning-rate decay: plateau (halve when M_global stalls, the paper), interval (halve every
  # lr_interval steps, the public code) or none.
  config.objective.lr_schedule = "plateau"
  config.objective.lr_factor = 0.5  # Factor applied at each decay.
  config.objective.lr_min_scale = 0.02  # Floor of the learning-rate factor.
  config.objective.lr_patience = 2000  # Steps without a new minimum of M_global before a decay.
  config.objective.lr_threshold = 0.01  # Relative decrease of M_global counted as progress.
  config.objective.lr_interval = 100000  # Steps between decays for lr_schedule=interval.
  config.objective.m_global_decay = 0.99  # Moving average of M_global for the stall test.

  config.optim.generator = dcgan.optimizer("adam", 1e-4, b1=0.5)  # G's optimiser.
  config.optim.discriminator = dcgan.optimizer("adam", 1e-4, b1=0.5)  # D's optimiser.

  # Vanishing residuals: on with config.stabilisers=vanishing_residual.
  config.vanishing_residual = ml_collections.ConfigDict()
  config.vanishing_residual.steps = 16000  # Steps for the carry to fall from 1 to 0.
  config.vanishing_residual.stages = 16  # Equal carry decrements (each one recompiles).

  config.train.batch_size = 16  # Batch size (Sec. 3.4).
  config.train.steps = 20000  # Training iterations.

  config = presets.apply_args(config, arg)
  if "smoke" in (arg or "").split(","):
    config.model.hidden_dim = 16
    config.vanishing_residual.steps = 4
    config.vanishing_residual.stages = 2
  return config
