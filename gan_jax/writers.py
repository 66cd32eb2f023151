"""Metric writers: console progress line, JSON lines, TensorBoard event files.

TensorBoard files are written with tensorboardX, which needs no TensorFlow (clu's writers
import TensorFlow, which training on local data must not need).
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging


class MetricWriter:
  """Interface: scalars and images per step."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    pass

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    pass

  def flush(self) -> None:
    pass

  def close(self) -> None:
    self.flush()


def truncate_jsonl(path: str, last_step: int) -> int:
  """Drops the lines of a metrics.jsonl file whose step is after `last_step`, and lines cut
  off or unreadable, keeping the others in order; the file is rewritten whole and renamed.

  A run resumed from the checkpoint at step N repeats the steps after N, whose lines the
  interrupted run may have written: without this they would appear twice.

  Args:
    path: the file (nothing happens if it does not exist).
    last_step: the last step to keep.

  Returns:
    The number of lines dropped.
  """
  if not os.path.isfile(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue  # cut off by a killed run: the next appended line would be glued to it
    if line.endswith("\n") and isinstance(record, dict) and record.get("step", 0) <= last_step:
      kept.append(line)
  if len(kept) < len(lines):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.writelines(kept)
    os.replace(path + ".tmp", path)
  return len(lines) - len(kept)


class JsonlWriter(MetricWriter):
  """Appends one JSON object per write to `path`: {"step": t, "<metric>": value, ...}.

  Line-buffered, so every written line is on disk at once: a killed run keeps all the metrics
  it logged. A run resumed from step N passes `start=N`: the lines after step N, which the
  interrupted run wrote after its last checkpoint, are dropped before new ones are appended,
  so each step appears once.
  """

  def __init__(self, path: str, start: int | None = None):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if start is not None:
      dropped = truncate_jsonl(path, start)
      if dropped:
        logging.info("%s: dropped %d lines after step %d (before the resume)", path, dropped, start)
    self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in close())

  def write_scalars(self, step, scalars):
    record = {"step": int(step)}
    record.update({k: float(v) for k, v in scalars.items()})
    self._file.write(json.dumps(record) + "\n")

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


class TensorBoardWriter(MetricWriter):
  """TensorBoard event files in `logdir` (scalars and (H, W, C) uint8 images).

  A run resumed from step N passes `start=N`. If `logdir` already has event files, the new
  file begins with a restart marker at step N + 1 (tensorboardX's `purge_step`: a SessionLog
  START event), on which TensorBoard hides the events of earlier files at steps >= N + 1, so
  the steps the interrupted run logged after its last checkpoint are not shown twice. The
  older files are left as they are: other readers of the event files see both.
  """

  def __init__(self, logdir: str, start: int | None = None):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    purge_step = None
    if start is not None and glob.glob(os.path.join(logdir, "*tfevents*")):
      purge_step = start + 1
    self._writer = SummaryWriter(logdir, flush_secs=30, purge_step=purge_step)

  def write_scalars(self, step, scalars):
    for k, v in scalars.items():
      self._writer.add_scalar(k, float(v), int(step))

  def write_images(self, step, images):
    for k, v in images.items():
      self._writer.add_image(k, np.asarray(v), int(step), dataformats="HWC")

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ConsoleWriter(MetricWriter):
  """One progress line per log: step, chosen metrics, iterations/s and ETA; an evaluation's
  scalars (no iteration rate) as one line of its `eval/` metrics."""

  def __init__(self, total_steps: int, keys: Sequence[str] = ("d/loss", "g/loss"), stream=None):
    self.total_steps = total_steps
    self.keys = tuple(keys)
    self.stream = stream or sys.stdout

  def write_scalars(self, step, scalars):
    if "perf/steps_per_sec" not in scalars:
      shown = [f"{k[5:]} {v:.4g}" for k, v in sorted(scalars.items()) if k.startswith("eval/")]
      print(f"step {step}/{self.total_steps} | eval: " + ", ".join(shown), file=self.stream)
      return
    shown = [f"{k} {scalars[k]:.4g}" for k in self.keys if k in scalars]
    rate = scalars.get("perf/steps_per_sec", float("nan"))
    eta = (self.total_steps - step) / rate if rate and rate > 0 else float("nan")
    print(
      f"step {step}/{self.total_steps} | "
      + " ".join(shown)
      + f" | {rate:.2f} it/s | ETA {format_duration(eta)}",
      file=self.stream,
      flush=True,
    )


class MultiWriter(MetricWriter):
  def __init__(self, writers: Sequence[MetricWriter]):
    self.writers = list(writers)

  def write_scalars(self, step, scalars):
    for w in self.writers:
      w.write_scalars(step, scalars)

  def write_images(self, step, images):
    for w in self.writers:
      w.write_images(step, images)

  def flush(self):
    for w in self.writers:
      w.flush()

  def close(self):
    for w in self.writers:
      w.close()


class RateMeter:
  """Iterations per second between calls."""

  def __init__(self, step: int):
    self._step, self._time = step, time.perf_counter()

  def __call__(self, step: int) -> float:
    now = time.perf_counter()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    return rate
