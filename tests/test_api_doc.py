"""The example of docs/api.md runs as written, from a folder outside the repository, and the
plug-in code shown in docs/extending.md is the code tests/test_extending.py checks."""

import os
import re

import numpy as np
import pytest

import gan_jax
from gan_jax.metrics import inception

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
  with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
    return f.read()


def test_api_example_runs(tmp_path, monkeypatch, capsys):
  blocks = re.findall(r"^```python\n(.*?)^```", _read("docs", "api.md"), re.S | re.M)
  assert blocks, "docs/api.md has no python block"
  try:
    inception.load_params()
    weights = True
  except FileNotFoundError:
    weights = False
  if not weights:
    # Everything but the FID still runs; the stand-in checks what the FID is given.
    def fid(images_a, images_b):
      for x in (images_a, images_b):
        assert x.dtype == np.uint8 and x.ndim == 4 and len(x) >= 2
      return 0.0

    monkeypatch.setattr(gan_jax.metrics, "fid", fid)
  monkeypatch.chdir(tmp_path)  # nothing may depend on the repository being the current folder
  exec(compile(blocks[0], "docs/api.md", "exec"), {"__name__": "api_example"})
  out = capsys.readouterr().out
  assert "trained 4 iterations" in out
  fid_line = [line for line in out.splitlines() if line.startswith("FID ")]
  assert len(fid_line) == 1 and np.isfinite(float(fid_line[0].split()[1]))
  if not weights:
    pytest.skip(
      f"ran without the FID part: Inception weights not converted ({inception.DOWNLOAD_COMMAND})"
    )


@pytest.mark.parametrize("name", ["hinge", "r1", "feature_matching"])
def test_extending_doc_shows_the_tested_plugins(name):
  assert _read("tests", "extensions", f"{name}.py") in _read("docs", "extending.md"), (
    f"docs/extending.md no longer shows tests/extensions/{name}.py as it is"
  )
