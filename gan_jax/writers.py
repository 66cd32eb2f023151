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


class Progress:
  """A per-iteration progress line: step, bar, iterations/s and ETA.

  On a terminal the line is redrawn in place (at most every `refresh` seconds); elsewhere (a
  log file, a pipe) a line is printed every `interval` seconds. The rate counts the iterations
  completed after the first one, so the first one's compilation stays out of it and the ETA.

  Args:
    start: the step training starts from (a resumed checkpoint's).
    total: the last step.
    stream: where to write (default stdout).
    interval: seconds between lines when `stream` is not a terminal.
    refresh: seconds between redraws on a terminal.
    clock: seconds, monotonic (for tests).
  """

  def __init__(
    self,
    start: int,
    total: int,
    stream=None,
    interval: float = 30.0,
    refresh: float = 0.2,
    clock=time.monotonic,
  ):
    self.start, self.total = start, total
    self.stream = stream or sys.stdout
    isatty = getattr(self.stream, "isatty", None)
    self.tty = bool(isatty and isatty())
    self.interval = refresh if self.tty else interval
    self._clock = clock
    self._began = clock()
    self._first: tuple[int, float] | None = None  # (step, time) of the first completed step
    self._shown_at = -math.inf
    self._drawn = False

  def rate(self, step: int, now: float) -> float:
    """Iterations per second since the first completed step (NaN before a second one)."""
    if self._first is None or step <= self._first[0]:
      return math.nan
    return (step - self._first[0]) / max(now - self._first[1], 1e-9)

  def line(self, step: int, now: float | None = None) -> str:
    """The progress line at completed step `step`."""
    now = self._clock() if now is None else now
    done = min(max(step, 0) / max(self.total, 1), 1.0)  # of the whole run, also after a resume
    width = 20
    bar = "#" * int(done * width) + "-" * (width - int(done * width))
    rate = self.rate(step, now)
    if math.isnan(rate):
      timing = f"first step in {now - self._began:.1f}s (compiling)"
    else:
      eta = (self.total - step) / rate if rate > 0 else math.inf
      timing = f"{rate:.2f} it/s | ETA {format_duration(eta)}"
    return f"step {step}/{self.total} [{bar}] {100 * done:3.0f}% | {timing}"

  def begin(self, note: str = "") -> None:
    """Shows the line before the first iteration completes (e.g. while it compiles)."""
    text = f"step {self.start}/{self.total} | compiling the training iteration"
    self._show(text + (f" ({note})" if note else ""), self._clock())

  def update(self, step: int) -> None:
    """Records that iteration `step` completed, and shows the line when it is time."""
    now = self._clock()
    if self._first is None:
      self._first = (step, now)
      self._show(self.line(step, now), now)  # the first line comes right after compilation
    elif now - self._shown_at >= self.interval or step >= self.total:
      self._show(self.line(step, now), now)

  def clear(self) -> None:
    """Removes the line drawn on a terminal, before other output is printed."""
    if self._drawn:
      self.stream.write("\r\033[K")
      self._drawn = False

  def close(self) -> None:
    if self._drawn:
      self.stream.write("\n")
      self.stream.flush()
      self._drawn = False

  def _show(self, text: str, now: float) -> None:
    self._shown_at = now
    if self.tty:
      self.stream.write("\r\033[K" + text)
      self._drawn = True
    else:
      self.stream.write(text + "\n")
    self.stream.flush()


class ConsoleWriter(MetricWriter):
  """One progress line per log: step, chosen metrics, iterations/s and ETA; an evaluation's
  scalars (no iteration rate) as one line of its `eval/` metrics.

  With `progress`, a Progress line is kept below them (on a terminal) and cleared before
  each of them is printed.
  """

  def __init__(
    self,
    total_steps: int,
    keys: Sequence[str] = ("d/loss", "g/loss"),
    stream=None,
    progress: Progress | None = None,
  ):
    self.total_steps = total_steps
    self.keys = tuple(keys)
    self.stream = stream or sys.stdout
    self.progress = progress

  def write_scalars(self, step, scalars):
    if self.progress is not None:
      self.progress.clear()
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

  def close(self):
    if self.progress is not None:
      self.progress.close()


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
    self.reset(step)

  def reset(self, step: int) -> None:
    """Counts from `step`, now (e.g. once the first iteration has compiled)."""
    self._step, self._time = step, time.perf_counter()

  def __call__(self, step: int) -> float:
    now = time.perf_counter()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    return rate
