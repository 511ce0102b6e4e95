# One-command setup: `make pipeline` and `make test` both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= default
DATA ?=
RUN ?= $(if $(DATA),$(notdir $(abspath $(DATA))),$(PROFILE))

.PHONY: install test test-fast lint browser demo pipeline data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,demo]"
	@touch $(STAMP)

test: lint browser
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not notebook"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# The demo's browser test drives Debian's chromium: installed here where apt can, never an error
# (without it that one test is skipped, with the reason).
browser:
	@command -v chromium >/dev/null || \
	  (command -v apt-get >/dev/null && apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	   >/dev/null) || echo "chromium unavailable: the demo's browser test will skip"

demo: $(STAMP)
	$(BIN)/python -m utils demo

data: $(STAMP)
	$(BIN)/python -m utils minigld --out data/minigld-$(PROFILE) --profile $(PROFILE) --if-missing

# make pipeline DATA=DIR: a folder in the competition's layout instead of the embedded dataset
pipeline: $(if $(DATA),install,data)
	$(BIN)/python -m utils pipeline $(if $(DATA),--data-root $(DATA),--profile $(PROFILE)) \
	  --out outputs/$(RUN)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
