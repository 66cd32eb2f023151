"""Bad inputs end the train CLI with one line `error: ...` on stderr and exit code 2, before
the workdir is touched; the library raises ConfigError, FileNotFoundError, ValueError or
OSError naming the field or file."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gan_jax import configs, train
from gan_jax import spec as spec_lib
from gan_jax.cli import train as train_cli
from gan_jax.core.registry import ConfigError
from tests.utils import smoke_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_one_error(stderr: str, *fragments: str) -> str:
  """The single line of `stderr`, checked to be `error: ...` holding every fragment."""
  lines = stderr.strip().splitlines()
  assert len(lines) == 1, stderr
  assert lines[0].startswith("error: "), stderr
  for fragment in fragments:
    assert fragment in lines[0], (fragment, lines[0])
  return lines[0]


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """main.py with `args` in a subprocess on one CPU device."""
  full_env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  full_env.pop(train_cli.TRACEBACK_ENV, None)
  full_env.update(env or {})
  return subprocess.run(
    [sys.executable, "main.py", *args],
    cwd=ROOT,
    env=full_env,
    capture_output=True,
    text=True,
    timeout=120,
  )


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
  "args,fragments",
  [
    (
      ["--config=configs/dcgan.py:smoke", "--config.train.stepz=5"],
      ["train.stepz", "did you mean train.steps?"],
    ),
    (
      ["--config=configs/dcgan.py:smoke", "--config.trian.steps=5"],
      ["trian", "did you mean train?"],
    ),
    (["--config=configs/nope.py:smoke"], ["configs/nope.py", "not found", "dcgan, dcgan_advas"]),
    (["--config=configs/dcgan.py:cifar100"], ["'cifar100'", "valid: cpu, smoke, celeb_a"]),
    (
      ["--config=configs/dcgan.py:smoke", "--config.objective.name=hing"],
      ["'hing'", "objective.name", "valid names: began, lsgan, minimax"],
    ),
    (
      ["--config=configs/dcgan.py:smoke", "--config.train.checkpoint_every=-1"],
      ["train.checkpoint_every", "expected an int >= 0"],
    ),
    (["--config.train.stepz=5"], ["train.stepz", "did you mean train.steps?"]),
  ],
  ids=["field", "section", "config_file", "preset", "objective", "period", "default_config"],
)
def test_cli_bad_input_is_one_line(args, fragments, tmp_path):
  workdir = tmp_path / "run"
  result = run_main(*args, f"--workdir={workdir}")
  assert result.returncode == 2, result.stderr
  assert_one_error(result.stderr, *fragments)
  assert not workdir.exists()


@pytest.mark.parametrize(
  "flag,env", [("--verbose", {}), (None, {"GAN_JAX_TRACEBACK": "1"})], ids=["flag", "env"]
)
def test_cli_traceback_on_request(flag, env, tmp_path):
  args = ["--config=configs/dcgan.py:smoke", "--config.train.steps=0", f"--workdir={tmp_path}/r"]
  result = run_main(*args, *([flag] if flag else []), env=env)
  assert result.returncode == 2
  assert "Traceback (most recent call last)" in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last == "error: invalid value 0 for config field train.steps; expected an int >= 1"


# ----------------------------------------------------------------------------- config values


def _set(config, path, value):
  *sections, name = path.split(".")
  holder = config
  for s in sections:
    holder = holder[s]
  holder[name] = value


@pytest.mark.parametrize(
  "path,value,fragments",
  [
    ("train.steps", 0, ["train.steps", "an int >= 1"]),
    ("train.steps", -5, ["train.steps", "an int >= 1"]),
    ("train.log_every", -1, ["train.log_every", "an int >= 0 (0 = only at the last step)"]),
    ("train.sample_every", -3, ["train.sample_every", "an int >= 0"]),
    ("train.checkpoint_every", -1, ["train.checkpoint_every", "an int >= 0"]),
    ("train.batch_size", 0, ["train.batch_size", "an int >= 1"]),
    ("train.batch_size", 6, ["train.batch_size=6 is not divisible by the 4 devices"]),
    ("train.n_critic", 0, ["train.n_critic", "an int >= 1"]),
    ("train.devices", -1, ["train.devices", "an int >= 0 (0 = all)"]),
    ("train.devices", 8, ["train.devices=8 but only 4 devices exist"]),
    ("train.keep_checkpoints", 0, ["train.keep_checkpoints", "an int >= 1"]),
    ("train.num_samples", 0, ["train.num_samples", "an int >= 1"]),
    ("train.prefetch", -1, ["train.prefetch", "an int >= 0"]),
    ("train.ema_decay", 1.0, ["train.ema_decay", "a number in [0, 1)"]),
    ("train.ema_decay", -0.5, ["train.ema_decay", "a number in [0, 1)"]),
    ("train.compute_dtype", "float8", ["train.compute_dtype", "valid: 'float32', 'bfloat16'"]),
    ("train.cpu_convolutions", "onednn", ["train.cpu_convolutions", "valid: 'eigen', 'ynnpack'"]),
    ("seed", -1, ["config field seed", "an int >= 0"]),
    ("eval.every", -1, ["eval.every", "an int >= 0"]),
    ("optim.generator.learning_rate", -1e-4, ["optim.generator.learning_rate", "a number >= 0"]),
    ("optim.discriminator.b1", 1.0, ["optim.discriminator.b1", "a number in [0, 1)"]),
    ("optim.generator.eps", -1.0, ["optim.generator.eps", "a number >= 0"]),
    ("model.width", 0, ["model.width", "an int >= 1"]),
    ("model.bn_momentum", 1.5, ["model.bn_momentum", "a number in [0, 1]"]),
    ("objective.name", "hing", ["unknown objective 'hing'", "valid names:"]),
    ("model.name", "resnet", ["unknown model 'resnet'", "model.name", "valid names:"]),
    ("stabilisers", "lenz", ["unknown stabiliser 'lenz'", "valid names: advas"]),
    ("optim.generator.name", "lion", ["optim.generator.name", "adam, rmsprop, sgd"]),
  ],
)
def test_bad_value_is_one_line_before_the_workdir(path, value, fragments, tmp_path, capsys):
  config = smoke_config("dcgan")
  _set(config, path, value)
  workdir = tmp_path / "run"
  with pytest.raises(ConfigError):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
  assert train_cli.run_training(config, str(workdir)) == 2
  assert_one_error(capsys.readouterr().err, *fragments)
  assert not workdir.exists()


def test_bad_eval_section_is_one_line_before_the_workdir(tmp_path, capsys):
  config = smoke_config("dcgan", eval__every=2, eval__metrics="fidd")
  assert train_cli.run_training(config, str(tmp_path / "run")) == 2
  assert_one_error(capsys.readouterr().err, "unknown metric 'fidd'", "eval.metrics", "fid, ")
  assert not (tmp_path / "run").exists()


def test_every_shipped_config_passes_the_checks():
  for name in configs.names():
    spec_lib.validate_config(configs.get(name))
    spec_lib.validate_config(configs.get(name, "smoke"))


# ----------------------------------------------------------------------------- data and workdir


def _idx_images(n=4, size=8) -> bytes:
  header = bytes([0, 0, 0x08, 3]) + b"".join(x.to_bytes(4, "big") for x in (n, size, size))
  return header + bytes(n * size * size)


@pytest.mark.parametrize(
  "content,fragment",
  [
    (lambda: gzip.compress(_idx_images())[:-12], "the gzip file is truncated or corrupt"),
    (lambda: b"not gzip at all", "the gzip file is truncated or corrupt"),
  ],
  ids=["truncated", "not_gzip"],
)
def test_corrupt_idx_file_is_named(content, fragment, tmp_path, capsys):
  data = tmp_path / "data"
  data.mkdir()
  path = data / "train-images-idx3-ubyte.gz"
  path.write_bytes(content())
  config = smoke_config("dcgan", "fashion_mnist,smoke", data__path=str(data))
  workdir = tmp_path / "run"
  assert train_cli.run_training(config, str(workdir)) == 2
  assert_one_error(capsys.readouterr().err, str(path), fragment)
  assert not workdir.exists()


def test_broken_image_in_a_folder_is_named(tmp_path, capsys):
  data = tmp_path / "images"
  data.mkdir()
  for i in range(3):
    Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(data / f"{i}.png")
  (data / "1.png").write_bytes((data / "1.png").read_bytes()[:30])  # truncated
  config = smoke_config("dcgan", data__source="folder", data__path=str(data))
  workdir = tmp_path / "run"
  assert train_cli.run_training(config, str(workdir)) == 2
  assert_one_error(capsys.readouterr().err, "cannot read image", str(data / "1.png"))
  assert not workdir.exists()


def test_missing_dataset_is_one_line(tmp_path, capsys):
  config = smoke_config("dcgan", "fashion_mnist,smoke", data__path=str(tmp_path / "nowhere"))
  assert train_cli.run_training(config, str(tmp_path / "run")) == 2
  assert_one_error(capsys.readouterr().err, "IDX files of dataset 'fashion_mnist'", "nowhere")
  assert not (tmp_path / "run").exists()


def test_unusable_workdir_is_one_line(tmp_path, capsys, monkeypatch):
  config = smoke_config("dcgan")
  file = tmp_path / "file"
  file.write_text("x")
  assert train_cli.run_training(config, str(file)) == 2
  assert_one_error(capsys.readouterr().err, f"workdir {file} is a file")
  assert train_cli.run_training(config, str(file / "run")) == 2
  assert_one_error(capsys.readouterr().err, f"{file} is a file")
  assert file.read_text() == "x"

  read_only = tmp_path / "read_only"
  read_only.mkdir()
  read_only.chmod(0o555)
  if os.access(read_only, os.W_OK):  # root ignores permissions: a read-only mount, simulated
    real_access = os.access
    monkeypatch.setattr(
      os, "access", lambda p, mode: False if str(p) == str(read_only) else real_access(p, mode)
    )
  try:
    assert train_cli.run_training(config, str(read_only / "run")) == 2
    assert_one_error(capsys.readouterr().err, f"workdir {read_only}/run cannot be created")
    assert train_cli.run_training(config, str(read_only)) == 2
    assert_one_error(capsys.readouterr().err, f"workdir {read_only} is not writable")
    assert os.listdir(read_only) == []
  finally:
    read_only.chmod(0o755)


@pytest.mark.parametrize(
  "error,code,line",
  [
    (
      "save",
      1,
      "error: saving the checkpoint at step 30 in /ckpt needs about 1.1 MiB, but only 1.0 MiB "
      "are free (disk full?); the checkpoint at step 20 is intact",
    ),
    ("abort", 130, "interrupted: aborted"),
  ],
)
def test_failed_save_and_second_sigint_exit_codes(error, code, line, monkeypatch, capsys):
  """A checkpoint that cannot be saved ends the run with its one line and exit code 1; a
  second Ctrl-C (KeyboardInterrupt while stopping) with 130."""
  from gan_jax import checkpoint  # pylint: disable=g-import-not-at-top

  def fails(config, workdir):
    del config, workdir
    if error == "save":
      raise checkpoint.CheckpointSaveError(line[len("error: ") :])
    raise KeyboardInterrupt

  monkeypatch.setattr(train, "train_and_evaluate", fails)
  assert train_cli.run_training(smoke_config("dcgan"), "unused") == code
  assert capsys.readouterr().err.strip().splitlines() == [line]
