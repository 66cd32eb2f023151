"""Checkpoints with orbax-checkpoint: periodic, kept-N, resumable, and checked for
compatibility before anything is restored or overwritten.

Each checkpoint holds the TrainState and a JSON record of the config and of the state's
structure (every leaf's path, shape and dtype). orbax writes a checkpoint into a temporary
folder and renames it only once complete, so a run killed during a save leaves the previous
checkpoints intact and the partial one is ignored (and cleaned up) on resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax.core.registry import ConfigError


def state_signature(abstract_state: Any) -> dict[str, str]:
  """{leaf path: "shape dtype"} of a (possibly abstract) pytree."""
  leaves = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
  return {jax.tree_util.keystr(path): f"{tuple(x.shape)} {x.dtype}" for path, x in leaves}


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += _config_diff(a, b, f"{prefix}{key}.")
    elif a != b:
      diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return diffs


def _state_handler() -> ocp.PyTreeCheckpointHandler:
  """The TrainState's handler: orbax's standard one, with each array written by one replica.

  orbax's default on CPU and TPU splits a replicated array between its replicas
  ("replica-parallel"): one small slicing program compiled per parameter shape and device set,
  about 40 per model and each costing more than it saves for GAN-sized states. One replica
  writes each shard instead, as orbax does on GPU. The files are those of `StandardSave`, so
  checkpoints of either kind restore with the other.
  """
  handlers = ocp.type_handlers
  registry = handlers.create_type_handler_registry(
    (int, handlers.ScalarHandler()),
    (float, handlers.ScalarHandler()),
    (np.number, handlers.ScalarHandler()),
    (np.ndarray, handlers.NumpyHandler()),
    (jax.Array, handlers.ArrayHandler(use_replica_parallel=False)),
    (str, handlers.StringHandler()),
  )
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (e.g. the disk is full); the earlier ones are intact."""


class Checkpointer:
  """Saves and restores TrainStates under `directory`.

  Saves run in the background; `poll` (called once per iteration by the trainer) and `wait`
  raise CheckpointSaveError naming the step of a save that failed, as soon as it has failed.

  Args:
    directory: checkpoint folder (created if needed).
    keep: number of checkpoints kept.
    config: the run's config as a plain dict (stored in each checkpoint, for error messages).
    metric: (name, "min" or "max"): keep the `keep` checkpoints with the best value of this
      metric (passed to `save`) instead of the latest ones.
  """

  def __init__(
    self, directory: str, keep: int, config: dict[str, Any], metric: tuple[str, str] | None = None
  ):
    self.directory = os.path.abspath(directory)
    self.config = config
    best = {}
    if metric is not None:
      name, mode = metric
      best = dict(
        best_fn=lambda metrics: metrics[name],
        best_mode=mode,
        keep_checkpoints_without_metrics=False,
      )
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, cleanup_tmp_directories=True, **best
    )
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=options,
      item_handlers={"state": _state_handler(), "meta": ocp.JsonCheckpointHandler()},
    )
    self._saving: int | None = None  # the step of a save that may still be in progress
    self._saved = self._manager.latest_step()  # the last checkpoint known to be complete

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The step of the best checkpoint (with `metric`), else the latest."""
    return self._manager.best_step()

  def restore(self, abstract_state: Any, step: int | None = None) -> Any:
    """Restores the checkpoint at `step` (default: latest) onto `abstract_state`'s shardings.

    Raises:
      ConfigError: the checkpoint was written by a run whose state has a different structure
        (another model, width, objective, ...); the message lists what differs.
    """
    step = self.latest_step() if step is None else step
    meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    meta = meta["meta"]
    expected = state_signature(abstract_state)
    if meta["signature"] != expected:
      changed = _config_diff(meta.get("config", {}), self.config)
      leaves = sorted(set(meta["signature"].items()) ^ set(expected.items()))[:6]
      raise ConfigError(
        f"the checkpoint at step {step} in {self.directory} was written by an incompatible "
        f"config; nothing was restored or overwritten. Config fields that differ: "
        f"{changed or 'none recorded'}. First differing state leaves: {leaves}. Use a new "
        f"--workdir, or the original config to resume."
      )
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract_state)
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(state=ocp.args.PyTreeRestore(abstract_state, restore_args)),
    )
    return restored["state"]

  def save(self, step: int, state: Any, metrics: dict[str, float] | None = None) -> None:
    """Saves `state` as checkpoint `step` (asynchronously; see `poll` and `wait`).

    Raises:
      CheckpointSaveError: this save, or the previous one, failed.
    """
    meta = {"config": self.config, "signature": state_signature(state)}
    self.wait()  # the previous save's error belongs to it, not to this one
    self._check_space(step, state)
    with self._failure(step):
      self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=metrics,
        force=True,
      )
    self._saving = step

  def _intact(self) -> str:
    """What a failed save leaves: the last checkpoint known to be complete, if any."""
    if self._saved is None:
      return "no earlier checkpoint"
    return f"the checkpoint at step {self._saved} is intact"

  def _check_space(self, step: int, state: Any) -> None:
    """Raises CheckpointSaveError, before anything is written, when the file system has
    less free space than the checkpoint needs (its arrays' bytes plus a margin); orbax would
    only find out in its background threads."""
    if "://" in self.directory:  # a remote file system: nothing to check locally
      return
    needed = sum(x.nbytes for x in jax.tree.leaves(state) if hasattr(x, "nbytes"))
    needed = int(needed * 1.1) + (1 << 20)
    free = shutil.disk_usage(self.directory).free
    if free < needed:
      raise CheckpointSaveError(
        f"saving the checkpoint at step {step} in {self.directory} needs about "
        f"{needed / 2**20:.1f} MiB, but only {free / 2**20:.1f} MiB are free (disk full?); "
        f"{self._intact()}"
      )

  def poll(self) -> None:
    """Raises CheckpointSaveError if the save in progress has failed; never blocks."""
    if self._saving is not None and not self._manager.is_saving_in_progress():
      self.wait()

  def wait(self) -> None:
    """Blocks until pending saves are complete.

    Raises:
      CheckpointSaveError: the pending save failed.
    """
    if self._saving is None:
      self._manager.wait_until_finished()
      return
    step, self._saving = self._saving, None
    with self._failure(step):
      self._manager.wait_until_finished()
      self._manager.check_for_errors()
    self._saved = step

  @contextlib.contextmanager
  def _failure(self, step: int):
    """Turns an error of the save of `step` into one CheckpointSaveError line."""
    try:
      yield
    except CheckpointSaveError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      cause = " ".join(str(e).split())[:300] or type(e).__name__
      raise CheckpointSaveError(
        f"saving the checkpoint at step {step} in {self.directory} failed ({cause}); "
        f"{self._intact()}"
      ) from e

  def close(self) -> None:
    self._manager.close()


def config_to_dict(config) -> dict[str, Any]:
  """A ConfigDict as JSON-safe nested dicts."""
  return json.loads(config.to_json_best_effort())
