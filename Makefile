# Every target bootstraps .venv on a fresh machine: nothing is needed before `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-parallel lint format schemas bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/promptbus serve

test: $(STAMP)
	$(BIN)/pytest

# The suite on two processes (pytest-xdist), in collection order, a test file to a process
# (module-scoped fixtures; test_cli.py's `make run` and `serve` share the default data
# directory): the slow multi-process e2e files start first, small unit files fill in behind.
# About 40% less time on 2 cores, but not the default: under its extra load a few
# timing-sensitive tests still fail now and then, and a slow run beats a flaky one.
test-parallel: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP)
	$(BIN)/promptbus schemas

bench: $(STAMP)
	$(BIN)/python bench/fast_path.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
