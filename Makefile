# One command each: `make setup`, `make test`, `make run`, `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
DATA_DIR ?= data/raw
SEED ?= 42
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: setup test lint run bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest

# Execute every notebook in order, writing outputs into it (PROFILE=quick|full, DATA_DIR, SEED).
run: setup
	@for notebook in $(NOTEBOOKS); do \
	  echo "== $$notebook ($(PROFILE))"; \
	  $(VENV)/bin/papermill "$$notebook" "$$notebook" --cwd notebooks -p PROFILE $(PROFILE) \
	    -p DATA_DIR "$(abspath $(DATA_DIR))" -p SEED $(SEED) -p VERBOSE 2 || exit 1; \
	done
	$(PY) -m helpers summary --profile $(PROFILE)

clean:
	rm -rf build .pytest_cache .ruff_cache

# Benchmarks on real photos (DATA_DIR: a PetImages folder or a prepared split): pipeline speed,
# float32 vs automatic precision, peak memory of a full-profile epoch. Prints a table; the JSON
# (last line) also goes to results/benchmarks.json. BENCH_ARGS passes more options, e.g.
# BENCH_ARGS="--max-photos 2000" or "--time-to-accuracy" (see `python -m benchmarks --help`).
BENCH_ARGS ?=
bench: setup
	$(PY) -m benchmarks --data-dir "$(abspath $(DATA_DIR))" --json-out results/benchmarks.json \
	  $(BENCH_ARGS)
