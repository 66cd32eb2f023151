"""Periodic actions of the training loop: logs, sample grids, evaluation, checkpoints.

Each action runs every `every` steps and at the last step; the loop asks each in turn, so
adding periodic work is one more action, not another modulo check in the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass
class PeriodicAction:
  """Calls `fn(step)` every `every` steps (0: never) and, with `at_end`, at `last_step`.

  Attributes:
    name: what the action does (for messages).
    every: the period in steps; 0 switches the action off except at the end.
    fn: step -> None.
    last_step: the run's final step.
    at_end: also run at the final step.
  """

  name: str
  every: int
  fn: Callable[[int], None]
  last_step: int
  at_end: bool = True

  def due(self, step: int) -> bool:
    """Whether the action runs after iteration `step`."""
    return bool((self.every and step % self.every == 0) or (self.at_end and step == self.last_step))

  def __call__(self, step: int) -> None:
    self.fn(step)
