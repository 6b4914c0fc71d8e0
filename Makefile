# Every target bootstraps .venv on a fresh machine: nothing is needed before `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format schemas bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/promptbus serve

# Two processes (pytest-xdist), a test file to a process: most of the suite waits on sockets,
# subprocesses and timers, so two keep both cores busy without crowding them (the suite has
# timing bounds). A file stays whole: module-scoped fixtures, and test_cli.py's `make run`
# and `serve` share the checkout's default data directory.
TEST_PROCESSES ?= 2

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

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
