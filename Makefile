# One command each: `make setup`, `make test`, `make run`, `make publish`, `make bench`,
# `make tune`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COLAB_VENV := .venv-colab
PROFILE ?= auto
DATA_DIR ?= data/raw
SEED ?= 42
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: setup colab-env test test-fast lint run publish bench tune links clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# A second environment with Colab's preinstalled versions (Python 3.13 where it exists), where
# tests/test_colab.py runs every notebook alone, as a Colab user would.
colab-env: $(COLAB_VENV)/.installed

$(COLAB_VENV)/.installed: requirements-colab.txt
	test -x $(COLAB_VENV)/bin/python || $$(.ci/colab-python) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet -r requirements-colab.txt
	touch $@

lint: setup
	$(VENV)/bin/ruff check .

test: lint colab-env
	$(VENV)/bin/pytest

# The quick loop: everything but the notebook executions and benchmarks (a minute or two).
test-fast: lint
	$(VENV)/bin/pytest -m "not slow"

# After moving the repository or raising the version (tools/links.py): rewrite the Colab
# badges and the install cells, which pin the release tag v<version>.
links: setup
	$(PY) -m tools.sync_links

# Execute every notebook in order (PROFILE=auto|quick|full, where auto is full on a GPU and
# quick otherwise; DATA_DIR, SEED). The executed notebooks go to build/<PROFILE>/notebooks/, the
# model, figures and metrics to build/quick/ or build/full/; the committed notebooks, figures/
# and results/ are left alone.
run: setup
	$(PY) -m tools.notebooks build/$(PROFILE)/notebooks PROFILE=$(PROFILE) \
	  DATA_DIR="$(abspath $(DATA_DIR))" SEED=$(SEED) VERBOSE=2 -- $(NOTEBOOKS)
	$(PY) -m tools.summary --profile $(PROFILE)

# The reference run: the full profile on Colab's versions (.venv-colab, with the helpers of
# this checkout), written into notebooks/, figures/ and results/ (the work folder is the
# repository root; the model goes to models/, which git ignores).
publish: setup colab-env
	PYTHONPATH="$(CURDIR)" $(COLAB_VENV)/bin/python -m tools.notebooks notebooks PROFILE=full \
	  DATA_DIR="$(abspath $(DATA_DIR))" WORK_DIR="$(CURDIR)" SEED=$(SEED) VERBOSE=2 -- $(NOTEBOOKS)
	cp models/alexnet_bn/history.json models/alexnet_bn/config.json results/
	$(PY) -m tools.summary --profile full --work-dir .

clean:
	rm -rf build .pytest_cache .ruff_cache

# Benchmarks on real photos (DATA_DIR: a PetImages folder or a prepared split): pipeline speed,
# float32 vs automatic precision, peak memory of full-profile training. Prints a table; the
# JSON (last line) also goes to results/benchmarks.json. BENCH_ARGS passes more options, e.g.
# BENCH_ARGS="--max-photos 2000" or "--time-to-accuracy" (see `python -m benchmarks --help`).
BENCH_ARGS ?=
bench: setup
	$(PY) -m benchmarks --data-dir "$(abspath $(DATA_DIR))" --json-out results/benchmarks.json \
	  $(BENCH_ARGS)

# Tuning on the validation split (benchmarks/tuning.py): each recipe trained the same way, one
# row each added to results/tuning.json, which notebook 05 shows. TUNE_ARGS sets the recipes and
# the scale, e.g. TUNE_ARGS="--epochs 4 --image-size 128 --train-photos 5000" for pilots; left
# empty, every pilot recipe trains the full profile's run (hours on a CPU).
TUNE_ARGS ?=
tune: setup
	$(PY) -m benchmarks.tuning --data-dir "$(abspath $(DATA_DIR))" $(TUNE_ARGS)
