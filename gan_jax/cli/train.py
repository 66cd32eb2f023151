r"""Trains a GAN: `python main.py` in a checkout, `gan-jax-train` when installed.

  python main.py --config=configs/dcgan.py --workdir=runs/dcgan
  gan-jax-train --config=wgan_gp_lens:smoke --workdir=runs/smoke
  python main.py --config=configs/wgan_gp.py:cifar10 --workdir=runs/wgan_gp \
      --config.train.steps=100000 --plugins=my_objectives
  python main.py --config=configs/dcgan.py --workdir=/shared/runs/dcgan \
      --coordinator_address=host0:8476 --num_processes=2 --process_id=0   # and 1 on host 1

Multi-process training (docs/multihost.md) runs one process per host: --distributed alone
takes the set-up JAX detects (Cloud TPU, SLURM, Open MPI); --coordinator_address,
--num_processes and --process_id give it explicitly (and imply --distributed).

A bad input (config file, field, value, data file, workdir) ends the run before anything is
written, with one line `error: ...` on stderr and exit code 2; --verbose (or the environment
variable GAN_JAX_TRACEBACK=1) also prints the traceback. SIGINT or SIGTERM during training saves
a checkpoint at the current step and exits with 130 or 143.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from gan_jax import checkpoint, configs, train
from gan_jax.cli import import_plugins
from gan_jax.core.registry import ConfigError

# Without --config: configs/<this>.py of the current folder (a checkout), else the shipped one.
DEFAULT_CONFIG = "configs/wgan_gp_lens.py"
TRACEBACK_ENV = "GAN_JAX_TRACEBACK"
# What the library raises for a bad input (ConfigError is a ValueError; named for the reader).
INPUT_ERRORS = (ConfigError, FileNotFoundError, ValueError, OSError)
# What loading a config file and its overrides can raise, besides absl's flags.Error.
_CONFIG_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OSError, SyntaxError)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and samples.")
flags.DEFINE_bool(
  "verbose",
  False,
  f"On an error, print the full traceback before the one-line message (also: {TRACEBACK_ENV}=1).",
)
flags.DEFINE_bool(
  "distributed",
  False,
  "Multi-process training, one process per host: call jax.distributed.initialize(), with the "
  "flags below where given, else with what JAX detects (Cloud TPU, SLURM, Open MPI). Implied "
  "by any of them.",
)
flags.DEFINE_string(
  "coordinator_address",
  None,
  "host:port of process 0, where the processes meet (multi-process training; all processes "
  "pass the same).",
)
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process training).")
flags.DEFINE_integer(
  "process_id", None, "This process's index, 0 ... num_processes - 1 (multi-process training)."
)
flags.DEFINE_list(
  "plugins",
  [],
  "Modules to import before the config is read (they register "
  "objectives, models, stabilisers, ...).",
)
# No default here: ml_collections would load it, with the overrides of the command line, when
# this module is imported, where an error cannot be reported; `run` passes the default instead.
config_flags.DEFINE_config_file(
  "config",
  None,
  "Training config: a file (configs/<name>.py[:<arg>]) or, installed, a config name "
  f"(<name>[:<arg>]); default: {DEFAULT_CONFIG}.",
  lock_config=True,
)
flags.mark_flags_as_required(["workdir"])


class _QuietLibraries(logging.Filter):
  """Drops INFO records of checkpointing and JAX internals (e.g. the platforms JAX did not
  find), which would bury the progress lines."""

  def filter(self, record):
    internal = any(part in record.pathname for part in ("/orbax/", "/jax/", "/jaxlib/"))
    if "/orbax/" in record.pathname and record.levelno == logging.ERROR:
      # A save that failed in orbax's background threads: the trainer reports it as one line
      # naming its step (the tracebacks show with --verbose).
      return wants_traceback()
    return record.levelno >= logging.WARNING or not internal


def wants_traceback(argv: Sequence[str] = ()) -> bool:
  """Whether errors show their traceback: --verbose (read from the command line `argv` while
  flags are not parsed) or $GAN_JAX_TRACEBACK set to anything but "" or "0"."""
  if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
    return True
  if FLAGS.is_parsed():
    return FLAGS.verbose
  return any(re.fullmatch(r"--?verbose(=(true|t|1|yes))?", a, re.IGNORECASE) for a in argv)


def one_line(error: BaseException | str) -> str:
  """The first line of an error's message (the last line of a message that carries a
  traceback, as ml_collections' errors in a config file do)."""
  if not isinstance(error, BaseException):
    return str(error)
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not lines:
    return type(error).__name__
  if any(line.startswith("Traceback (most recent call last)") for line in lines):
    # The last line is the original error, "ValueError: ...".
    return re.sub(r"^[\w.]+: ", "", lines[-1], count=1)
  return lines[0]


def report(
  error: BaseException | str, message: str | None = None, argv: Sequence[str] = ()
) -> None:
  """Prints one line `error: <message, else the error's first line>` on stderr, after the
  traceback of `error` when asked for (`wants_traceback(argv)`)."""
  if isinstance(error, BaseException) and wants_traceback(argv):
    traceback.print_exception(type(error), error, error.__traceback__)
  print(f"error: {message or one_line(error)}", file=sys.stderr, flush=True)


def fail(
  error: BaseException | str,
  code: int = 2,
  message: str | None = None,
  argv: Sequence[str] = (),
) -> NoReturn:
  """`report(error, message, argv)`, then exits with `code`."""
  report(error, message, argv)
  sys.exit(code)


def _config_value(argv: Sequence[str]) -> str | None:
  values = [a[len("--config=") :] for a in argv if a.startswith("--config=")]
  return values[-1] if values else None


def check_config_file(argv: Sequence[str]) -> str | None:
  """The error of a --config=<file>[:<arg>] whose file does not exist, else None."""
  value = _config_value(argv)
  file = (value or "").partition(":")[0]
  if value is None or os.path.isfile(file):
    return None
  return (
    f"config file {file!r} not found; --config takes a file (configs/<name>.py[:<arg>]) or "
    f"a shipped config's name: {', '.join(configs.names())}"
  )


def unknown_override(argv: Sequence[str]) -> str | None:
  """The error of the first --config.<field> override that names no field of the config,
  with the closest field name, else None (also when the config cannot be loaded)."""
  # Loaded as ml_collections loads it: get_config(<arg>) of the file, the argument only if given.
  file, *arg = (_config_value(argv) or default_config()).split(":", 1)
  try:
    module_spec = importlib.util.spec_from_file_location("_gan_jax_config_check", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(*arg)
  except Exception:  # pylint: disable=broad-except
    return None  # the error of the config file itself is reported instead
  for a in argv:
    match = re.match(r"^--?(?:no)?config\.([^=]+)", a)
    if not match:
      continue
    parts = match.group(1).split(".")
    node = config
    for i, key in enumerate(parts):
      if isinstance(node, (Mapping, ml_collections.ConfigDict)):
        if key in node:
          node = node[key]
          continue
        parent = ".".join(parts[:i])
        fields = sorted(str(k) for k in node)
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        prefix = parent + "." if parent else ""
        hint = (
          f"did you mean {prefix}{close[0]}?"
          if close
          else f"fields of {parent or 'the config'}: {', '.join(fields)}"
        )
        return f"unknown config field {prefix}{key} in {a.split('=', 1)[0]}; {hint}"
      return f"config field {'.'.join(parts[:i])} has no fields ({a.split('=', 1)[0]})"
  return None


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses the command line into FLAGS; a bad flag, config file or override ends the run
  with `error: ...` (exit code 2). absl's own flags (--help, ...) behave as usual."""
  problem = check_config_file(argv)
  if problem:
    fail(problem)
  try:
    return FLAGS(list(argv))
  except (flags.Error, *_CONFIG_ERRORS) as e:
    fail(e, message=unknown_override(argv), argv=argv)


def default_config() -> str:
  """DEFAULT_CONFIG if the current folder has it, else the shipped file of the same config."""
  if os.path.isfile(DEFAULT_CONFIG):
    return DEFAULT_CONFIG
  return configs.path(os.path.splitext(os.path.basename(DEFAULT_CONFIG))[0])


def resolve_config_arg(argv: list[str]) -> list[str]:
  """Adds --config=<default_config()> to a command line without --config, and rewrites
  --config=<name>[:<arg>] to the shipped config file when no such file exists."""
  if argv and not any(re.match(r"^--?config(=|$)", a) for a in argv):
    # First, so that the overrides --config.<field> are defined before absl reads them.
    argv = [argv[0], "--config=" + default_config(), *argv[1:]]
  out = []
  for a in argv:
    if a.startswith("--config="):
      value = a[len("--config=") :]
      file, _, arg = value.partition(":")
      if (
        not os.path.exists(file)
        and "/" not in file
        and not file.endswith(".py")
        and file in configs.names()
      ):
        a = "--config=" + configs.path(file) + (f":{arg}" if arg else "")
    out.append(a)
  return out


def _import_plugins(modules: str | list[str] | None) -> list[str]:
  """import_plugins, exiting with code 2 and a one-line `error: ...` when one is missing."""
  try:
    return import_plugins(modules)
  except ImportError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def distributed_args() -> dict[str, Any] | None:
  """The keyword arguments of jax.distributed.initialize() from the flags (only those given;
  JAX detects the others), or None for a one-process run.

  Raises:
    ValueError: a combination of the flags that cannot describe a run.
  """
  given = {
    name: FLAGS[name].value
    for name in ("coordinator_address", "num_processes", "process_id")
    if FLAGS[name].value is not None
  }
  if not given and not FLAGS["distributed"].value:
    return None
  num, pid = given.get("num_processes"), given.get("process_id")
  if num is not None and num < 1:
    raise ValueError(f"--num_processes={num} must be at least 1")
  if pid is not None and num is None:
    raise ValueError(f"--process_id={pid} needs --num_processes")
  if pid is not None and not 0 <= pid < num:
    raise ValueError(f"--process_id={pid} must be in 0 ... {num - 1} (--num_processes={num})")
  if given.get("coordinator_address") == "":
    raise ValueError("--coordinator_address is empty; it takes host:port of process 0")
  return given


def initialize_distributed() -> None:
  """Starts multi-process training if the flags ask for it (`distributed_args`); exits with a
  one-line error when they are inconsistent or the processes cannot connect."""
  try:
    kwargs = distributed_args()
  except ValueError as e:
    fail(e)
  if kwargs is None:
    return
  if jax.config.jax_cpu_collectives_implementation is None:
    # Without an implementation, a CPU program cannot communicate with other processes.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(**kwargs)
  except ValueError as e:  # JAX's own check of the arguments, e.g. nothing to detect them from
    fail(e, message=f"multi-process set-up: {one_line(e)}")
  except RuntimeError as e:  # e.g. the coordinator could not be reached in time
    fail(e, code=1, message=f"multi-process set-up failed: {one_line(e)}")


def describe_run(config: ml_collections.ConfigDict, name: str, workdir: str) -> str:
  """The first output line: the config, its length, the devices and the workdir."""
  devices = jax.devices()
  kinds = ", ".join(sorted({d.device_kind for d in devices}))
  train_cfg = config.get("train", {})
  size = f"{train_cfg.get('steps', '?')} steps of batch {train_cfg.get('batch_size', '?')}"
  processes = f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""
  return (
    f"gan_jax: {name} ({size}) on {len(devices)} device{'s' if len(devices) > 1 else ''} "
    f"({kinds}){processes}; workdir {workdir}"
  )


def run_training(config: ml_collections.ConfigDict, workdir: str) -> int:
  """`train.train_and_evaluate(config, workdir)` with its errors as one line on stderr.

  Returns:
    The exit code: 0 trained; 2 a bad input (`error: ...`); 1 a non-finite loss or a
    checkpoint that could not be saved (e.g. a full disk); 130 or 143
    (128 + the signal) stopped by SIGINT or SIGTERM after a checkpoint was saved.
  """
  try:
    train.train_and_evaluate(config, workdir)
  except train.TrainingInterrupted as e:
    print(f"interrupted: {e}", file=sys.stderr, flush=True)
    return e.exit_code
  except KeyboardInterrupt:
    print("interrupted: aborted", file=sys.stderr, flush=True)
    return 130
  except (train.NonFiniteError, checkpoint.CheckpointSaveError) as e:
    report(e)
    return 1
  except INPUT_ERRORS as e:
    report(e)
    return 2
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_QuietLibraries())
  try:
    # A config may name plug-ins itself (top-level field `plugins`, a list or comma-separated).
    named = _import_plugins(FLAGS.config.get("plugins"))
  except OSError as e:  # the config file could not be loaded (ml_collections defers the error)
    fail(e)
  plugins = list(dict.fromkeys(named + _import_plugins(FLAGS.plugins)))
  if plugins != named:
    # Recorded in config.json, so that an evaluation or a resume of the run imports them too.
    with FLAGS.config.unlocked():
      if "plugins" in FLAGS.config:
        del FLAGS.config["plugins"]
      FLAGS.config.plugins = ",".join(plugins)
  initialize_distributed()
  if jax.process_index() == 0:
    name = config_flags.get_config_filename(FLAGS["config"])
    print(describe_run(FLAGS.config, name, FLAGS.workdir), flush=True)
  sys.exit(run_training(FLAGS.config, FLAGS.workdir))


def run():
  """The console entry point."""
  # Plug-ins must be importable before absl parses the config file, which may import them.
  for a in sys.argv:
    if a.startswith("--plugins="):
      _import_plugins(a.split("=", 1)[1])
  app.run(main, argv=resolve_config_arg(sys.argv), flags_parser=parse_flags)
