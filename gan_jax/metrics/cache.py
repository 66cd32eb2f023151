"""The user cache directory for converted weights, trained classifiers and reference stats."""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np


def cache_dir(*parts: str) -> str:
  """`$GAN_JAX_CACHE`, else `$XDG_CACHE_HOME/gan_jax`, else `~/.cache/gan_jax` (joined with
  `parts`); the folder is not created."""
  root = os.environ.get("GAN_JAX_CACHE")
  if not root:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.path.join(xdg, "gan_jax")
  return os.path.join(root, *parts)


def save_npz_atomic(path: str, **arrays: np.ndarray) -> None:
  """Writes an .npz so that a reader never sees a partial file (write, then rename)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".npz.tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; cached files are shareable
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def file_sha1(path: str) -> str:
  """Hex SHA-1 of a file's bytes."""
  digest = hashlib.sha1()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
  """A short hash of named arrays (names, shapes, dtypes and bytes), for cache keys."""
  digest = hashlib.sha1()
  for name in sorted(arrays):
    value = np.ascontiguousarray(arrays[name])
    digest.update(f"{name}:{value.shape}:{value.dtype};".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()[:16]
