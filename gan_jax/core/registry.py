"""Name -> object registries for objectives, regularisers, models, datasets, ...

Every string in a config that selects code is resolved through a :class:`Registry`, so an
unknown name fails at start-up with the config field and the valid names, never inside a
jitted function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
  """A config value is invalid; the message names the field and the valid choices."""


class Registry(Mapping[str, T], Generic[T]):
  """A mapping from names to objects with a decorator for registration.

  Example:
    >>> OBJECTIVES = Registry("objective")
    >>> @OBJECTIVES.register("minimax")
    ... def minimax(...): ...
    >>> OBJECTIVES.get("minimax", field="objective.name")
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Returns a decorator that registers its argument under `name`."""

    def decorator(obj: T) -> T:
      if name in self._entries:
        raise KeyError(f"{self.kind} {name!r} is already registered")
      self._entries[name] = obj
      return obj

    return decorator

  def get(self, name: str, field: str | None = None) -> T:  # pytype: disable=signature-mismatch
    """Looks up `name`; raises ConfigError naming `field` and the valid names if unknown."""
    try:
      return self._entries[name]
    except (KeyError, TypeError):
      where = f" (config field {field})" if field else ""
      raise ConfigError(
        f"unknown {self.kind} {name!r}{where}; valid names: {', '.join(sorted(self._entries))}"
      ) from None

  def __getitem__(self, name: str) -> T:
    return self.get(name)

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._entries))

  def __len__(self) -> int:
    return len(self._entries)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}, {sorted(self._entries)})"


def check_choice(value, choices, field: str):
  """Raises ConfigError unless `value` is one of `choices`."""
  if value not in choices:
    raise ConfigError(
      f"invalid value {value!r} for config field {field}; valid: {', '.join(map(repr, choices))}"
    )
  return value


def read_section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
  """Config section `name` as a plain dict; ConfigError if the config has none."""
  if name not in config:
    raise ConfigError(f"config has no section {name!r}")
  section = config[name]
  return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def field_reader(section: Mapping[str, Any], prefix: str) -> Callable[[str], Any]:
  """Returns get(field) -> section[field], raising ConfigError naming `prefix.field` if absent.

  Example:
    >>> get = field_reader(config["lens"], "lens")
    >>> get("K")
  """

  def get(field: str) -> Any:
    if field not in section:
      raise ConfigError(f"config section {prefix} lacks field {field!r}")
    return section[field]

  return get
