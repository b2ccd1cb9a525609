# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit server-tests clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,motor,demo]"
	touch $@

## demo: the parallel sweep on the embedded store (MONGO_RESULTS_URI or ARGS="--uri ..." for MongoDB)
demo: $(STAMP)
	$(BIN)/python -m mongo_results.demo $(ARGS)

## test: ruff, mypy --strict and the whole suite, including a FerretDB it builds and starts
test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check mongo_results tests scripts/test-server
	$(BIN)/ruff format --check mongo_results tests scripts/test-server

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
