"""Logs of resumed runs, the sample CLI, the evaluation CLI's defaults and errors, and the
labelled sample grids."""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import time

import numpy as np
import pytest

from gan_jax import checkpoint as checkpoint_lib
from gan_jax import images as images_lib
from gan_jax import sampling, train, writers
from gan_jax import spec as spec_lib
from gan_jax.cli import evaluate, sample
from tests.utils import smoke_config


def _records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def _events(path: str) -> list:
  """The Event protos of a TensorBoard event file (TFRecord: length, crc, data, crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  events = []
  with open(path, "rb") as f:
    while header := f.read(12):
      (length,) = struct.unpack("<Q", header[:8])
      event = event_pb2.Event()
      event.ParseFromString(f.read(length))
      f.read(4)
      events.append(event)
  return events


def _tensorboard_scalars(logdir: str, tag: str) -> list[int]:
  """The steps of `tag` that TensorBoard shows: files in name order, and a SessionLog START
  at step s hides the earlier events at steps >= s (as TensorBoard's event loader does)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  steps: list[int] = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    for event in _events(path):
      if event.session_log.status == event_pb2.SessionLog.START:
        steps = [s for s in steps if s < event.step]
      if event.HasField("summary"):
        steps += [event.step for v in event.summary.value if v.tag == tag]
  return steps


# ----------------------------------------------------------------------------- resumed logs


def test_jsonl_truncation_keeps_steps_up_to_the_checkpoint(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(json.dumps({"step": s, "x": s}) + "\n" for s in (1, 2, 3, 4)))
    f.write('{"step": 5, "x"')  # cut off by a kill
  assert writers.truncate_jsonl(path, 2) == 3
  assert [r["step"] for r in _records(tmp_path)] == [1, 2]
  assert writers.truncate_jsonl(path, 2) == 0
  assert writers.truncate_jsonl(str(tmp_path / "none.jsonl"), 0) == 0


def test_resume_logs_each_step_once_with_the_uninterrupted_values(tmp_path):
  """A run checkpointed at step 3 that logged up to step 8 before it lost its later
  checkpoints is resumed: steps 4-8 are logged once, with the values of an uninterrupted
  run, and the first line after the resume averages step 4 alone."""
  per_step = smoke_config(
    "dcgan", train__steps=8, train__log_every=1, train__sample_every=0, train__checkpoint_every=0
  )
  train.train_and_evaluate(per_step, str(tmp_path / "full"))
  full = {r["step"]: r for r in _records(tmp_path / "full")}

  workdir = tmp_path / "split"
  config = smoke_config(
    "dcgan",
    train__steps=8,
    train__log_every=2,
    train__sample_every=0,
    train__checkpoint_every=3,
    train__keep_checkpoints=5,
  )
  train.train_and_evaluate(config, str(workdir))
  assert sorted(int(s) for s in os.listdir(workdir / "checkpoints")) == [3, 6, 8]
  # As if the run had been killed after logging step 8 but before its checkpoints at 6 and 8
  # were complete, while it wrote the next line.
  for step in ("6", "8"):
    shutil.rmtree(workdir / "checkpoints" / step)
  before = _records(workdir)
  with open(workdir / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 9, "d/lo')
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 8

  records = _records(workdir)
  assert [r["step"] for r in records] == [2, 4, 6, 8]
  assert records[0] == before[0]  # step 2, before the checkpoint: kept as it was
  for record in records:
    step = record["step"]
    # Steps since the previous log line; after the resume from step 3, step 4 alone.
    window = [4] if step == 4 else [step - 1, step]
    for key, value in record.items():
      if key in ("step", "perf/steps_per_sec"):
        continue
      # The float32 mean of the logged float32 values, as the trainer computes it: bit-exact.
      expected = np.mean(np.asarray([full[s][key] for s in window], np.float32))
      assert value == float(expected), (step, key)

  logdir = str(workdir / "tensorboard")
  assert len(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))) == 2
  assert _tensorboard_scalars(logdir, "d/loss") == [2, 4, 6, 8]


# ----------------------------------------------------------------------------- sample CLI


def test_sample_cli_exports_npz_grid_and_folder(tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  config = smoke_config("dcgan", train__steps=2)
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(config, workdir)
  out = str(tmp_path / "samples.npz")
  sample.cli(["sample", f"--workdir={workdir}", "--num=10", f"--out={out}"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == {"workdir": workdir, "checkpoint": "latest", "step": 2, "num": 10, "out": out}
  with np.load(out) as f:
    images = f["images"]
  assert images.dtype == np.uint8 and images.shape == (10, 16, 16, 1)
  # The evaluation's fixed noise: the images `evaluate --workdir` scores.
  spec = spec_lib.build_spec(config)
  expected = images_lib.to_uint8(sampling.make_sample_fn(spec, state, config.seed)(10))
  np.testing.assert_array_equal(images, expected)
  assert len(evaluate.load_images(out)) == 10

  grid = str(tmp_path / "grid.png")
  sample.cli(["sample", f"--workdir={workdir}", "--num=9", f"--out={grid}"])
  with Image.open(grid) as im:
    assert im.size == (3 * 18 + 2, 3 * 18 + 2)
  folder = tmp_path / "pngs"
  sample.cli(["sample", f"--workdir={workdir}", "--num=3", f"--out={folder}", "--seed=5"])
  assert sorted(os.listdir(folder)) == ["0000000.png", "0000001.png", "0000002.png"]


def test_sample_cli_semi_supervised_exports_g_samples(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(smoke_config("semi_supervised", train__steps=2), workdir)
  out = str(tmp_path / "samples.npz")
  sample.cli(["sample", f"--workdir={workdir}", "--num=5", f"--out={out}"])
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
  with np.load(out) as f:
    assert f["images"].shape[0] == 5 and f["images"].dtype == np.uint8


@pytest.mark.parametrize(
  "args,fragment",
  [
    (["--num=10"], "--workdir=RUN and --out="),
    (["--workdir={run}", "--out={out}", "--num=0"], "at least one image"),
    (["--workdir={empty}", "--out={out}"], "config.json"),
    (["--workdir={cyclegan}", "--out={out}"], "translation run (game 'cyclegan')"),
  ],
)
def test_sample_cli_errors_are_one_line(args, fragment, tmp_path, capsys):
  cyclegan = tmp_path / "cyclegan"
  cyclegan.mkdir()
  config = checkpoint_lib.config_to_dict(smoke_config("cyclegan"))
  (cyclegan / "config.json").write_text(json.dumps(config), encoding="utf-8")
  paths = dict(run=cyclegan, empty=tmp_path, cyclegan=cyclegan, out=tmp_path / "s.npz")
  with pytest.raises(SystemExit) as e:
    sample.cli(["sample", *(a.format(**paths) for a in args)])
  assert e.value.code == 2
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
  assert not (tmp_path / "s.npz").exists()


# ----------------------------------------------------------------------------- sample grids


def test_side_by_side_labels_each_panel():
  grey = np.full((20, 30, 1), 128, np.uint8)
  colour = np.full((24, 40, 3), 64, np.uint8)
  plain = images_lib.side_by_side([grey, colour])
  top = images_lib.header_height()
  labelled = images_lib.side_by_side([grey, colour], labels=["real", "generated"])
  assert top > 0 and labelled.shape == (plain.shape[0] + top, plain.shape[1], 3)
  np.testing.assert_array_equal(labelled[top:], plain)
  for left, width, name in ((0, 30, "real"), (38, 40, "generated")):
    header = labelled[:top, left : left + width]
    assert (header < 255).any(), name  # text was drawn
    np.testing.assert_array_equal(header[..., 0], images_lib._label(name, width, top))  # pylint: disable=protected-access
  other = images_lib.side_by_side([grey, colour], labels=["x", "y_to_x"])
  assert (other[:top] != labelled[:top]).any()
  with pytest.raises(ValueError, match="1 labels for 2 panels"):
    images_lib.side_by_side([grey, colour], labels=["real"])


def test_trainer_sample_grids_name_their_panels(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  config = smoke_config("dcgan_lens", train__steps=2, train__sample_every=0)
  train.train_and_evaluate(config, str(tmp_path))
  with Image.open(tmp_path / "samples" / "step_0000002.png") as im:
    png = np.asarray(im.convert("RGB"))
  top, gap, names = images_lib.header_height(), 8, ["real", "lensed", "generated"]
  grid = images_lib.make_grid(np.zeros((config.train.num_samples, 16, 16, 1), np.uint8))
  assert png.shape[0] == grid.shape[0] + top
  assert png.shape[1] == len(names) * grid.shape[1] + gap * (len(names) - 1)
  for i, name in enumerate(names):
    left = i * (grid.shape[1] + gap)
    header = png[:top, left : left + grid.shape[1], 0]
    label = images_lib._label(name, grid.shape[1], top)  # pylint: disable=protected-access
    assert (header < 255).any()
    np.testing.assert_array_equal(header, label)


def test_console_shows_an_evaluation_as_its_metrics():
  import io  # pylint: disable=g-import-not-at-top

  from gan_jax import writers  # pylint: disable=g-import-not-at-top

  out = io.StringIO()
  console = writers.ConsoleWriter(100, stream=out)
  console.write_scalars(10, {"d/loss": 0.5, "g/loss": 1.25, "perf/steps_per_sec": 2.0})
  console.write_scalars(10, {"eval/fid": 12.5, "eval/modes": 800.0, "perf/eval_seconds": 3.0})
  lines = out.getvalue().splitlines()
  assert lines[0] == "step 10/100 | d/loss 0.5 g/loss 1.25 | 2.00 it/s | ETA 0m45s"
  assert lines[1] == "step 10/100 | eval: fid 12.5, modes 800"


# ----------------------------------------------------------------------------- progress


class _Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class _Terminal:
  """A stream that says it is a terminal and records what is written."""

  def __init__(self):
    self.text = ""

  def write(self, text):
    self.text += text

  def flush(self):
    pass

  def isatty(self):
    return True


def test_progress_rate_and_eta_leave_out_the_first_step():
  """The first completed step (which compiled) starts the clock: 10 s of compilation, then
  4 steps in 2 s are 2 it/s, and 94 steps remain: ETA 47 s."""
  import io  # pylint: disable=g-import-not-at-top

  clock, out = _Clock(), io.StringIO()
  progress = writers.Progress(0, 100, stream=out, interval=30.0, clock=clock)
  progress.begin("1 cpu device")
  clock.now += 10.0
  progress.update(1)  # shown at once: the first line comes right after compilation
  for step in range(2, 6):
    clock.now += 0.5
    progress.update(step)  # within the interval: not shown
  clock.now += 30.0
  progress.update(6)
  lines = out.getvalue().splitlines()
  assert lines[0] == "step 0/100 | compiling the training iteration (1 cpu device)"
  assert lines[1] == "step 1/100 [--------------------]   1% | first step in 10.0s (compiling)"
  assert len(lines) == 3
  rate = 5 / 32.0
  assert lines[2] == (
    f"step 6/100 [#-------------------]   6% | {rate:.2f} it/s | "
    f"ETA {writers.format_duration(94 / rate)}"
  )
  assert progress.rate(5, 112.0) == 2.0  # 4 steps in the 2 s after the first one


def test_progress_on_a_terminal_redraws_one_line_and_clears_it_for_logs():
  clock, term = _Clock(), _Terminal()
  progress = writers.Progress(10, 20, stream=term, refresh=0.2, clock=clock)
  console = writers.ConsoleWriter(20, stream=term, progress=progress)
  for step in range(11, 21):
    clock.now += 1.0
    progress.update(step)
  assert "\n" not in term.text  # one line, redrawn in place
  assert term.text.count("\r\033[K") == 10
  assert term.text.endswith("step 20/20 [####################] 100% | 1.00 it/s | ETA 0m00s")
  console.write_scalars(20, {"d/loss": 1.0, "perf/steps_per_sec": 1.0})
  assert term.text.endswith("\r\033[Kstep 20/20 | d/loss 1 | 1.00 it/s | ETA 0m00s\n")
  console.close()
  assert term.text.endswith("\n") and not term.text.endswith("\n\n")


def test_second_sigint_aborts_at_once():
  """The first SIGINT only records a stop request; a second one raises KeyboardInterrupt."""
  import signal  # pylint: disable=g-import-not-at-top

  previous = signal.getsignal(signal.SIGINT)
  with train.StopRequests() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is previous


def test_a_failed_background_save_is_reported_naming_its_step(tmp_path, monkeypatch):
  """A save that fails in the background (here: as on a full disk) is reported by the next
  poll with its own step and the last complete checkpoint; that one stays restorable."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  checkpoints = checkpoint_lib.Checkpointer(str(tmp_path / "ckpt"), keep=3, config={})
  state = {"w": jnp.arange(4.0)}
  checkpoints.save(1, state)
  checkpoints.wait()
  manager = checkpoints._manager  # pylint: disable=protected-access

  def no_space():
    raise OSError(28, "No space left on device")

  checkpoints.save(2, state)
  monkeypatch.setattr(manager, "check_for_errors", no_space)
  deadline = time.monotonic() + 60
  with pytest.raises(checkpoint_lib.CheckpointSaveError) as e:
    while time.monotonic() < deadline:  # poll never blocks: it raises once the save is over
      checkpoints.poll()
      time.sleep(0.01)
  assert str(e.value) == (
    f"saving the checkpoint at step 2 in {checkpoints.directory} failed ([Errno 28] No space "
    "left on device); the checkpoint at step 1 is intact"
  )
  monkeypatch.undo()
  restored = checkpoints.restore({"w": jnp.zeros(4)}, step=1)
  np.testing.assert_array_equal(restored["w"], np.arange(4.0))
  checkpoints.close()


def test_a_save_without_the_space_it_needs_fails_before_writing(tmp_path, monkeypatch):
  """A full disk is reported at the save that would fail, before orbax writes anything."""
  import collections  # pylint: disable=g-import-not-at-top

  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  checkpoints = checkpoint_lib.Checkpointer(str(tmp_path / "ckpt"), keep=3, config={})
  state = {"w": jnp.zeros((1000, 1000))}  # 4 MB
  checkpoints.save(1, state)
  checkpoints.wait()
  usage = collections.namedtuple("usage", "total used free")
  monkeypatch.setattr(checkpoint_lib.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 3 << 20))
  with pytest.raises(checkpoint_lib.CheckpointSaveError) as e:
    checkpoints.save(2, state)
  assert str(e.value) == (
    f"saving the checkpoint at step 2 in {checkpoints.directory} needs about 5.2 MiB, but only "
    "3.0 MiB are free (disk full?); the checkpoint at step 1 is intact"
  )
  assert sorted(os.listdir(checkpoints.directory)) == ["1"]
  checkpoints.close()
