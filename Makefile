# The two commands: `make run` and `make test`. Both create and reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-dev
# The compiled message catalogues (not in git: made from the .po files by every set-up).
CATALOGUES = newsletter/translations
MO = $(patsubst %.po,%.mo,$(wildcard $(CATALOGUES)/*/LC_MESSAGES/messages.po))

# Where the second test pass finds PostgreSQL and Redis (override to point elsewhere).
TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint test-embedded test-services catalogues

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/pybabel compile -f -d $(CATALOGUES)
	touch $(STAMP)

$(CATALOGUES)/%/LC_MESSAGES/messages.mo: $(CATALOGUES)/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -f -d $(CATALOGUES) -l $*

catalogues: $(MO)

run: $(STAMP) $(MO)
	$(BIN)/newsletter run

test: lint test-embedded test-services

lint: $(STAMP) $(MO)
	$(BIN)/ruff check newsletter tests wsgi.py
	$(BIN)/mypy

test-embedded: $(STAMP) $(MO)
	$(BIN)/python -m pytest

# The same suite on PostgreSQL + Redis (browser journeys already ran in the first pass).
test-services: $(STAMP) $(MO)
	NEWSLETTER_TEST_DATABASE_URL=$(TEST_PG_URL) NEWSLETTER_TEST_BROKER_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m pytest -m "not browser"
