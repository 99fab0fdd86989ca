# bikshop: `make run` serves it locally, `make test` runs the whole suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed setup.cfg
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	@$(BIN)/python scripts/run_local.py

# The suite runs on one xdist worker per core (at most 4: its gunicorn and Chromium tests start
# processes of their own); PYTEST_ARGS="-p no:xdist" runs it in one process, e.g. to use --pdb.
PYTEST_ARGS ?= -n auto --maxprocesses 4

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks need wrk (apt-get install wrk) and the local PostgreSQL; not part of `make test`.
# Pass options through, e.g. make bench BENCH_ARGS="--duration 30 --rounds 3".
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.bik_endpoints $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance test-output
