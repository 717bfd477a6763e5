# The two commands a fresh machine needs: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/llmproxy
PYTEST_ARGS ?=

.PHONY: install run test test-sqlite test-postgres services check format bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Embedded default: SQLite under data/, in-memory event bus, events appended to data/events.jsonl.
run: install
	./scripts/run-dev.sh

services:
	./scripts/ensure-services.sh
	./scripts/ensure-chromium.sh

test: install services
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "== tests on SQLite =="
	env -u DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

test-postgres:
	@echo "== tests on PostgreSQL ($(PG_TEST_URL)) =="
	DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest $(PYTEST_ARGS)

check: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	../shared/bench/run.sh .
