# The README's two commands: `make demo` and `make test`. Each installs what it needs first.
# Python 3.11+ with venv is the only prerequisite; the tests' browser (Debian's chromium) is
# installed by `make test` when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
CHROMIUM      := /usr/bin/chromium
# Test workers (pytest-xdist); one module's tests stay on one worker, with their fixtures.
TEST_WORKERS  ?= 2

.PHONY: demo test lint unit install install-dev chromium clean help

help:
	@echo "make demo   - install and run orgscope on the simulated organization (http://localhost:8501)"
	@echo "make test   - install test tools and the browser, then lint, type-check and run the tests"
	@echo "make lint   - ruff and mypy only"
	@echo "make clean  - remove the virtualenv and local data"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

# Debian's chromium for the browser tests (never `playwright install`: it downloads a browser).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@test -x $(CHROMIUM) || { echo "chromium is missing at $(CHROMIUM)"; exit 1; }

demo: $(RUNTIME_STAMP)
	$(BIN)/orgscope demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(DEV_STAMP) chromium lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) data data-demo .pytest_cache .mypy_cache .ruff_cache
