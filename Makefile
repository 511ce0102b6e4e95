# One-command setup: `make pipeline` and `make test` both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= default
RUN ?= $(PROFILE)

.PHONY: install test test-fast lint pipeline data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

test: lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not notebook"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

data: $(STAMP)
	$(BIN)/python -m utils minigld --out data/minigld-$(PROFILE) --profile $(PROFILE) --if-missing

pipeline: data
	$(BIN)/python -m utils pipeline --profile $(PROFILE) --out outputs/$(RUN)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
