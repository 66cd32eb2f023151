#!/usr/bin/env bash
# Installs the package as a user would (non-editable `pip install .` into a fresh virtualenv)
# and uses it from another directory: the wheel must hold the package and its configs, the
# console entry points must run, and the example of docs/api.md must run as written.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --upgrade pip
"$WORK/venv/bin/pip" install -q "$ROOT"

cd "$WORK"  # not the checkout: only the installed package is importable
"$WORK/venv/bin/python" - <<'PY'
import os
import gan_jax
assert "site-packages" in gan_jax.__file__, gan_jax.__file__
names = gan_jax.configs.names()
assert {"dcgan", "wgan_gp_lens", "began"} <= set(names), names
config = gan_jax.configs.get("wgan_gp_lens", "smoke")
assert config.stabilisers == "lens" and config.train.steps == 6
print("installed:", os.path.dirname(gan_jax.__file__), "configs:", ", ".join(names))
PY
# absl's --help exits with 1: check what it prints.
("$WORK/venv/bin/gan-jax-train" --helpfull || true) | grep -q -- "--config:"
("$WORK/venv/bin/gan-jax-evaluate" --helpfull || true) | grep -q -- "--workdir:"
("$WORK/venv/bin/gan-jax-sample" --helpfull || true) | grep -q -- "--workdir:"

# The Python API example of docs/api.md (its first python block), run from this directory.
"$WORK/venv/bin/python" - "$ROOT/docs/api.md" > example.py <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
print(re.search(r"```python\n(.*?)```", text, re.S).group(1))
PY
JAX_PLATFORMS=cpu "$WORK/venv/bin/python" example.py
echo "install check passed"
