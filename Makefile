# The two commands a fresh machine needs: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/llmproxy
PYTEST_ARGS ?=

.PHONY: install run test test-sqlite test-postgres services check typecheck format bench bench-stream

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
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "== tests on SQLite =="
	env -u DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

# Tests marked db_independent (no database at all: architecture, requirements, payload properties) ran above.
test-postgres:
	@echo "== tests on PostgreSQL ($(PG_TEST_URL)) =="
	DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -m "not db_independent" $(PYTEST_ARGS)

# The project's packages, as mypy checks them (configured in pyproject.toml: strict on the hot path, the event
# capture and the dispatchers).
MYPY_PACKAGES := llmproxy projects tokens audit instrumentation dispatch usage cli
check: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory typecheck

# mypy (configured in pyproject.toml), part of `make check` and `make test`.
typecheck: install
	@echo "== mypy =="
	$(VENV)/bin/mypy $(MYPY_PACKAGES)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks (see bench/README.md): they print numbers and never run in `make test`.
# bench: proxy overhead against a fixed-answer nginx upstream (apt-get install -y nginx-light wrk).
# bench-stream: many concurrent paced streams (needs node: apt-get install -y nodejs).
# LiteLLM and Portkey are compared when installed; BENCH_INSTALL_PEERS=1 installs them, BENCH_PEERS="" leaves them out.
bench: install
	bench/run.sh .

bench-stream: install
	bench/stream.sh .
