# Two commands for a new machine (see README.md):
#   make demo   set up .venv (once) and run the demo ablation (Tables 2 and 3, report, paths figure)
#   make test   set up .venv (once) and run the whole test suite with the lint/format gates
#   make test-fast   the unit tier only (no CLI, subprocess or training tests; minutes)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS ?= results

.PHONY: setup demo test test-fast docs lint clean-results

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; a second `make` reuses the environment.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

# Small models on a CPU: one worker per core (each gets cores/workers threads) beats one
# worker with all the threads.
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

demo: setup
	$(BIN)/vil-ablate sweep table2 --protocol demo --workers $(WORKERS) --results $(RESULTS)
	$(BIN)/vil-ablate sweep table3 --protocol demo --workers $(WORKERS) --results $(RESULTS)
	$(BIN)/vil-ablate paths --out $(RESULTS)/paths
	@echo "Demo done. Reports: $(RESULTS)/index.md, $(RESULTS)/demo/table2/report.md, $(RESULTS)/demo/table3/report.md"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# docs/config-reference.md from the config dataclasses' field comments (a test checks it).
docs: setup
	$(BIN)/python -m ablations.schema.reference

# The unit tier: tests/conftest.py marks the CLI/subprocess/training files e2e.
test-fast: setup
	$(BIN)/python -m pytest -m "not e2e and not slow"
