# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.base-installed
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.bench-installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test check test-loaded soak bench docs lint typecheck api clean

# The demo needs the package alone; the tests add their tools and the frameworks they run sweeps on.
$(BASE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP): $(BASE_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,motor]"
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

## demo: the parallel sweep and a job array with claims (MONGO_RESULTS_URI or ARGS="--uri ..." for MongoDB)
demo: $(BASE_STAMP)
	$(BIN)/python -m mongo_results.demo $(ARGS)

## test: ruff, the import contracts, mypy --strict, the docs build and the whole suite, including a FerretDB it builds and starts
test: lint typecheck api docs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## check: the edit loop's tier: ruff and the suite on what needs no server or cluster (under three minutes)
check: $(BENCH_STAMP)
	$(BIN)/ruff check mongo_results tests bench
	MONGO_RESULTS_TIER=fast $(BIN)/python -m pytest -q -x -p no:randomly $(PYTEST_ARGS)

## test-loaded: the whole suite with two CPU-bound processes beside it, as on a busy machine
test-loaded: $(BENCH_STAMP)
	$(BIN)/python scripts/loaded.py $(BIN)/python -m pytest $(PYTEST_ARGS)

## soak: the contract's state machine with ten times the examples of `make test`, on every store
soak: $(STAMP)
	CONTRACT_EXAMPLES=250 $(BIN)/python -m pytest tests/test_contract.py $(PYTEST_ARGS)

## api: no public name, parameter or default of the last release is gone (griffe against api/)
api: $(STAMP)
	$(BIN)/python scripts/api_check.py

## docs: the manual (docs/, mkdocs.yml) built into site/; strict, so a broken link or docstring fails
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## bench: mongo_results against raw PyMongo, Beanie, ODMantic and the file store (ARGS="--ops 1000 ...")
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench scale $(SCALE_ARGS)
	$(BIN)/python -m bench overhead
	$(BIN)/python -m bench large
	$(BIN)/python -m bench claims
	$(BIN)/python -m bench sweeps
	$(BIN)/python -m bench frames
	$(BIN)/python -m bench sharded
	$(BIN)/python -m bench workers
	$(BIN)/python -m bench latency
	$(BIN)/python -m bench profile --kind small --task "bulk create"
	$(BIN)/python -m bench profile --kind large --task "bulk read"
	$(BIN)/python -m bench profile --kind small --task "find by id"
	cp bench/results/chart.png docs/assets/chart.png

lint: $(BENCH_STAMP)
	$(BIN)/ruff check mongo_results tests bench scripts/test-server scripts/api_check.py scripts/griffe_derived.py scripts/loaded.py
	$(BIN)/ruff format --check mongo_results tests bench scripts/test-server scripts/api_check.py scripts/griffe_derived.py scripts/loaded.py
	$(BIN)/lint-imports

# The package also as Windows and macOS see it: a module only one platform has fails there.
typecheck: $(BENCH_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy mongo_results --platform win32
	$(BIN)/mypy mongo_results --platform darwin

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
