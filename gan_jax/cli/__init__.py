"""Command-line entry points (absl): `train` (main.py, gan-jax-train) and `evaluate`
(python -m gan_jax.cli.evaluate, gan-jax-evaluate)."""

import importlib


def import_plugins(modules: str | list[str] | None) -> list[str]:
  """Imports the comma-separated plug-in modules (each registers its objectives, terms,
  models or stabilisers on import); returns their names.

  Raises:
    ImportError: a module cannot be imported; the message names it.
  """
  names = modules.split(",") if isinstance(modules, str) else list(modules or [])
  names = [n.strip() for n in names if n.strip()]
  for name in names:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise ImportError(f"--plugins: cannot import {name!r}: {e}") from e
  return names
