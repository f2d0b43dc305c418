# Roomcast: `make run` serves, `make test` runs the whole suite. Both need only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: run test lint typecheck pytest migrate bench locust clean

run: $(VENV)/.run
	$(PY) run.py migrate
	$(PY) run.py serve

test: $(VENV)/.dev
	@PYTHON=$(PYTHON) sh scripts/system-deps.sh services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev
	$(PY) -m pytest $(ARGS)

migrate: $(VENV)/.run
	$(PY) run.py migrate

bench: $(VENV)/.dev
	$(PY) -m loadtests.fanout $(ARGS)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	    { echo "Roomcast needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)" >&2; exit 1; }
	@PYTHON=$(PYTHON) sh scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run: requirements.lock | $(PY)
	$(PIP) -r requirements.lock
	@touch $@

$(VENV)/.dev: requirements-dev.lock | $(PY)
	$(PIP) -r requirements-dev.lock
	@touch $@ $(VENV)/.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
