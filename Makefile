# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py serve

# Browser tests need Debian's Chromium (/usr/bin/chromium); `make browser` installs it.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Prints numbers, asserts nothing: the embedded default first, then PostgreSQL and Redis on
# 127.0.0.1 (a throw-away database is created and dropped). BENCH_ARGS="--n 1,10" for fewer.
bench: $(STAMP)
	$(BIN)/python bench/concurrency.py --backend sqlite,postgres $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3* channels.sqlite3* test-output
