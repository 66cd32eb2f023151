"""Command-line entry points (absl): `train` (main.py, gan-jax-train), `evaluate`
(python -m gan_jax.cli.evaluate, gan-jax-evaluate) and `sample` (python -m gan_jax.cli.sample,
gan-jax-sample).

Tools other than `train` keep their flags in their own `flags.FlagValues`, so that their names
(--workdir, --metrics, --seed, ...) can repeat another tool's when several are imported in one
process (the tests import them all). `run_app` hands such flags to absl's `app.run`; `cli`
parses a command line into them and calls the tool's `main`, for tests and scripts.
"""

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags


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


def fail(message: object) -> None:
  """Ends a tool the way every bad input ends: `error: <message>` on stderr, exit code 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(flag_values: flags.FlagValues, argv: Sequence[str]) -> list[str]:
  """Parses a command line (program name first) into `flag_values`.

  Returns:
    The program name and the arguments that are not flags.

  Raises:
    SystemExit: an unknown flag or a malformed value (code 2, after `error: <message>` on
      stderr).
  """
  try:
    return flag_values(list(argv))
  except flags.Error as e:
    fail(e)


def cli(
  main: Callable[[list[str]], Any], flag_values: flags.FlagValues, argv: Sequence[str]
) -> Any:
  """Runs an absl `main` on a command line (program name first) parsed into its tool's own
  flags; flags not on the line take their defaults, whatever an earlier call passed."""
  for name in flag_values:
    flag_values[name].unparse()
  return main(parse_flags(flag_values, argv))


def run_app(
  main: Callable[[list[str]], Any], flag_values: flags.FlagValues, doc: str | None = None
) -> None:
  """`app.run(main)` for a tool whose flags live in `flag_values`.

  They join absl's global flags for this process, as flags of the main module so that --help
  and --helpfull list them after the tool's description `doc` (for a console script, whose
  own module has no docstring); absl's own flags (--help, --verbosity, --flagfile, ...) keep
  working.
  """
  main_module = sys.modules["__main__"]
  if doc and not main_module.__doc__:
    main_module.__doc__ = doc
  flags.FLAGS.append_flag_values(flag_values)
  for name in flag_values:
    flags.FLAGS.register_flag_by_module(sys.argv[0], flag_values[name])
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag_values[name])
  # The tool reads `flag_values`, whose flags are the very objects absl parses into.
  flag_values.mark_as_parsed()
  app.run(main, flags_parser=lambda argv: parse_flags(flags.FLAGS, argv))
