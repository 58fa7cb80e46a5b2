# Discreet — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test install lint format migrations-check clean bench-ingest bench-train bench-erasure bench-retention

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Start web + worker + beat on the embedded defaults (SQLite, file-system broker) with a demo tenant.
run: install
	$(BIN)/python manage.py run_embedded

## Run the whole test suite (SQLite by default; set DATABASE_URL / CELERY_BROKER_URL for PostgreSQL + Redis).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	PYTHONPATH=. $(BIN)/lint-imports

format: install
	$(BIN)/ruff format .

migrations-check: install
	DJANGO_SETTINGS_MODULE=platform_site.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

## Benchmarks print figures (PostgreSQL + Redis on 127.0.0.1; see bench/README.md).
bench-ingest: install
	$(BIN)/python bench/ingest.py

bench-train: install
	$(BIN)/python bench/train.py

bench-erasure: install
	$(BIN)/python bench/erasure.py

bench-retention: install
	$(BIN)/python bench/retention.py

clean:
	rm -rf var .pytest_cache .ruff_cache
