# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,motor]"
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

## demo: the parallel sweep on the embedded store (MONGO_RESULTS_URI or ARGS="--uri ..." for MongoDB)
demo: $(STAMP)
	$(BIN)/python -m mongo_results.demo $(ARGS)

## test: ruff, mypy --strict and the whole suite, including a FerretDB it builds and starts
test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: mongo_results against raw PyMongo, Beanie, ODMantic and the file store (ARGS="--ops 1000 ...")
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench scale $(SCALE_ARGS)
	$(BIN)/python -m bench overhead
	$(BIN)/python -m bench large

lint: $(BENCH_STAMP)
	$(BIN)/ruff check mongo_results tests bench scripts/test-server
	$(BIN)/ruff format --check mongo_results tests bench scripts/test-server

typecheck: $(BENCH_STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
