# Everyday commands. `make run` serves the app locally; `make test` is what CI runs (.ci/run).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= $(or $(RUN_HOST),127.0.0.1)
PORT ?= $(or $(RUN_PORT),8000)
PG_HOST := 127.0.0.1
PG_PORT := 5432

AZURITE := var/node/node_modules/.bin/azurite-blob

CHROMIUM := /usr/bin/chromium

.PHONY: venv pg azurite chromium lint test run run-azure bench clean

# The stamp depends on pyproject.toml, so editing dependencies reinstalls on the next make.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.venv: $(VENV)/.installed
venv: $(VENV)/.installed

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# Azurite (the Azure Storage emulator) for the blob storage contract tests; the tests start it.
$(AZURITE):
	mkdir -p var/node
	npm install --prefix var/node --no-audit --no-fund --loglevel=error azurite@3.35.0
azurite: $(AZURITE)

# Debian's Chromium for the browser tests (Playwright drives it; never `playwright install`).
$(CHROMIUM):
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium \
	|| { $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }
chromium: $(CHROMIUM)

pg:
	@if ! pg_isready -q -h $(PG_HOST) -p $(PG_PORT); then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 1; done; \
		pg_isready -h $(PG_HOST) -p $(PG_PORT); \
	fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Two passes. First every test that times nothing, two at a time (pytest-xdist, one per core),
# the PostgreSQL ones one after another on one of the two (an xdist group: they share a server);
# then, alone on the machine, the ones marked ``timed``, which measure another user's wait while
# they attack a real server (tests/conftest.py). Both run; either failing fails.
test: $(VENV)/.installed $(AZURITE) $(CHROMIUM) pg lint
	@$(BIN)/pytest -n 2 --dist loadgroup -m "not timed"; untimed=$$?; \
	$(BIN)/pytest -m timed; timed=$$?; \
	echo "make test: first pass exit $$untimed, second pass exit $$timed"; \
	[ $$untimed -eq 0 ] && [ $$timed -eq 0 ]

run: $(VENV)/.installed
	$(BIN)/magictoolbox run --host $(HOST) --port $(PORT)

# Azure mode on this machine: the relay, the Event Grid emulator, the Functions HTTP trigger and
# Azurite, each as its own process (DATABASE_URL=postgresql://… for PostgreSQL, as in Azure).
run-azure: $(VENV)/.installed $(AZURITE)
	$(BIN)/magictoolbox run-azure --host $(HOST) --port $(PORT)

bench: $(VENV)/.installed-bench pg
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .ruff_cache *.egg-info build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
