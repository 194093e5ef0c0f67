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

# Which tests each pass runs (pyproject.toml describes the markers): a test whose subject does
# not depend on the database or broker runs once, in the embedded pass; a fault that matters
# on the real services runs only there; browser journeys run in the embedded pass.
EMBEDDED_TESTS = not services_only
SERVICES_TESTS = not browser and not once

.PHONY: run test lint test-embedded test-services test-passes catalogues

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

test: lint test-passes test-embedded test-services

lint: $(STAMP) $(MO)
	$(BIN)/ruff check newsletter tests wsgi.py
	$(BIN)/mypy

# No test may be left out of both passes: collecting those in neither finds none (pytest's
# exit status 5, "no tests collected", is the pass here).
test-passes: $(STAMP) $(MO)
	@$(BIN)/python -m pytest --collect-only -q -p no:cacheprovider \
		-m "not ($(EMBEDDED_TESTS)) and not ($(SERVICES_TESTS))" >/dev/null; \
	status=$$?; [ $$status -eq 5 ] || { $(BIN)/python -m pytest --collect-only -q \
		-p no:cacheprovider -m "not ($(EMBEDDED_TESTS)) and not ($(SERVICES_TESTS))"; \
		echo "test-passes: the tests above run in neither pass (exit status $$status)"; exit 1; }

test-embedded: $(STAMP) $(MO)
	$(BIN)/python -m pytest -m "$(EMBEDDED_TESTS)"

# The same suite on PostgreSQL + Redis, less what the first pass ran for both (browser
# journeys, tests marked once).
test-services: $(STAMP) $(MO)
	NEWSLETTER_TEST_DATABASE_URL=$(TEST_PG_URL) NEWSLETTER_TEST_BROKER_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m pytest -m "$(SERVICES_TESTS)"
