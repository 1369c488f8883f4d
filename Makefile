# dpp-batches — developer entry points. Every target builds the venv it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint schema soak fuzz bench bench-quick clean

help:
	@echo "make demo   - embedded PostgreSQL, migrate, run the Batches API story"
	@echo "make test   - the test suite (DATABASE_URL, else testcontainers, else embedded)"
	@echo "make lint   - sqlfluff (sql/), ruff and mypy --strict (src/)"
	@echo "make schema - regenerate sql/schema.sql from a freshly migrated database"
	@echo "make soak   - concurrent load with invariant checks (SOAK_CLIENTS, SOAK_SECONDS)"
	@echo "make fuzz   - property-based fuzzing of every RPC, >= 10,000 examples"
	@echo "make bench  - the API against raw SQL, side by side (bench-quick: under 2 minutes)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/dpp-batches demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/sqlfluff lint sql/
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/python -m dpp_batches.schema_dump --output sql/schema.sql

SOAK_CLIENTS ?= 16
SOAK_SECONDS ?= 120
soak: $(STAMP)
	$(BIN)/python -m dpp_batches.soak --clients $(SOAK_CLIENTS) --seconds $(SOAK_SECONDS)

fuzz: $(STAMP)
	DPP_FUZZ_PROFILE=fuzz $(BIN)/pytest tests/test_fuzz.py -q -s

bench: $(STAMP)
	$(BIN)/python -m dpp_batches.bench

bench-quick: $(STAMP)
	$(BIN)/python -m dpp_batches.bench --quick

clean:
	rm -rf $(VENV) .dpp-embedded .pytest_cache .mypy_cache .ruff_cache
