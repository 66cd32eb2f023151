"""Feature matching (Salimans et al. 2016, Sec. 3.1) as a plug-in stabiliser.

A minimal example of a G term: the library has the full version, the stabiliser
`feature_matching` (`gan_jax/stabilisers/improved.py`: a choice of D's layer and of the
distance, and G's adversarial loss replaced or kept), so this one registers under its own
name, "my_feature_matching".

G's loss gains w·‖E f(x) − E f(G(z))‖₂², f being D's last hidden features. The features come
from the D passes that give D's scores (the quantities `features_real` and `features_fake`):
on G(z) the adversarial term's pass is reused, and the only new pass is D on the real batch,
which f(x) needs. It is on when "my_feature_matching" is in config.stabilisers and the config
has a section `my_feature_matching` with a field `weight`.
"""

import jax
import jax.numpy as jnp
import ml_collections

from gan_jax.builder import STABILISERS
from gan_jax.core.registry import field_reader
from gan_jax.core.terms import Term


def feature_matching_loss(*, features_real: jax.Array, features_fake: jax.Array):
  """‖E f(x) − E f(G(z))‖₂².

  Args:
    features_real: D's features (B, F) of the real batch (as D sees it).
    features_fake: D's features (B, F) of G(z).

  Returns:
    (the squared distance of the mean features, {}).
  """
  diff = jnp.mean(features_real, axis=0) - jnp.mean(features_fake, axis=0)
  return jnp.sum(jnp.square(diff)), {}


def default_config() -> ml_collections.ConfigDict:
  """The `my_feature_matching` config section."""
  return ml_collections.ConfigDict({"weight": 1.0})  # w: the term's weight in G's loss.


@STABILISERS.register("my_feature_matching")
def add_feature_matching(builder, cfg, step):
  """Adds the term "my_feature_matching" to G's phase (config section `my_feature_matching`)."""
  del step  # the same at every step
  weight = float(field_reader(cfg, "my_feature_matching")("weight"))
  builder.add_terms("g", Term("my_feature_matching", feature_matching_loss, weight=weight))
