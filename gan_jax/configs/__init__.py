"""The run configs, importable by name and shipped with the package.

  >>> from gan_jax import configs
  >>> configs.names()
  ['began', 'dcgan', ...]
  >>> config = configs.get("wgan_gp_lens", "smoke")   # = configs/wgan_gp_lens.py:smoke

Each module defines `get_config(arg=None)`; `arg` is the comma-separated argument after the
colon on the command line (a dataset preset from `presets.DATASETS` and/or `smoke`). In a
checkout the same files are `configs/<name>.py`, for `main.py --config=configs/<name>.py`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import ml_collections

# Modules of this package that are helpers, not configs.
_HELPERS = ("presets",)


def names() -> list[str]:
  """The names of the configs."""
  return sorted(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name not in _HELPERS and not m.name.startswith("_")
  )


def get(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """The config `name` (e.g. "dcgan") built with argument `arg` (e.g. "cifar10,smoke").

  `name` may also carry the argument after a colon ("dcgan:smoke").

  Raises:
    ValueError: unknown name; the message lists the valid ones.
  """
  if ":" in name and arg is None:
    name, arg = name.split(":", 1)
  if name not in names():
    raise ValueError(f"unknown config {name!r}; valid: {', '.join(names())}")
  return importlib.import_module(f"{__name__}.{name}").get_config(arg)


def path(name: str) -> str:
  """The file of config `name`, for `--config=` flags of an installed package."""
  if name not in names():
    raise ValueError(f"unknown config {name!r}; valid: {', '.join(names())}")
  return os.path.join(os.path.dirname(__file__), f"{name}.py")
