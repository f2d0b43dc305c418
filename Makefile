# Roomcast: `make run` serves, `make test` runs the whole suite. Both need only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Installs exactly the files a lock lists, each hash-checked; nothing is resolved against the
# index, so a newer release published upstream cannot change or break an install.
INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes
# How `make lock` compiles the locks: for every platform and Python from 3.11 on.
COMPILE := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
    --generate-hashes --custom-compile-command "make lock"
# Test processes `make test` runs the suite in (pytest-xdist); each starts its own servers.
JOBS   ?= 2
# Where `make locust` sends its load: a server started with `make run`, unless told otherwise.
HOST   ?= http://127.0.0.1:8080

.PHONY: run test check-lock lint typecheck pytest migrate bench storm locust lock clean

run: $(VENV)/.run
	$(PY) run.py migrate
	$(PY) run.py serve

test: $(VENV)/.dev
	@PYTHON=$(PYTHON) sh scripts/system-deps.sh services
	$(PY) scripts/check_lock.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(JOBS) --dist worksteal

check-lock: $(VENV)/.dev
	$(PY) scripts/check_lock.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev
	$(PY) -m pytest $(ARGS)

migrate: $(VENV)/.run
	$(PY) run.py migrate

bench: $(VENV)/.dev
	$(PY) -m loadtests.fanout $(ARGS)

storm: $(VENV)/.dev
	$(PY) -m loadtests.storm $(ARGS)

# Load from locust against a running server (`make run` in another terminal, or HOST=...).
locust: $(VENV)/.dev
	$(VENV)/bin/locust -f loadtests/locustfile.py --headless -u 20 -r 10 -t 20s --host $(HOST) $(ARGS)

# Recompile the locks from pyproject.toml, keeping every pin that still fits; pass
# ARGS=--upgrade to move everything to the newest releases, or ARGS="--upgrade-package NAME".
lock: $(VENV)/.dev
	$(COMPILE) requirements-pip.in -o requirements-pip.lock $(ARGS)
	$(COMPILE) pyproject.toml -o requirements.lock $(ARGS)
	$(COMPILE) pyproject.toml --extra dev -c requirements.lock -o requirements-dev.lock $(ARGS)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	    { echo "Roomcast needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)" >&2; exit 1; }
	@PYTHON=$(PYTHON) sh scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)

# The venv's pip is whatever the machine's Python carries; replace it with the locked one first.
$(VENV)/.pip: requirements-pip.lock | $(PY)
	$(INSTALL) -r requirements-pip.lock
	@touch $@

$(VENV)/.run: requirements.lock $(VENV)/.pip
	$(INSTALL) -r requirements.lock
	$(PY) -m pip check --disable-pip-version-check
	@touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.pip
	$(INSTALL) -r requirements-dev.lock
	$(PY) -m pip check --disable-pip-version-check
	@touch $@ $(VENV)/.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
