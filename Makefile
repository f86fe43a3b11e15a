# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format browser bench soak lock clean

# Every dependency at the version (and hash) in requirements.lock; `make lock` renews it.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The newest versions pyproject.toml allows, for Python 3.11, with their hashes. Review the diff,
# run `make test`, and commit requirements.lock with the change that needed it.
lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		--upgrade --quiet -o requirements.lock

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

# Chaos soak (bench/soak.py): worker processes killed and stopped under random users, then every
# invariant checked; exits non-zero on any violation. SOAK_ARGS="--duration 600" for longer.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --backend sqlite $(SOAK_ARGS)
	$(BIN)/python bench/soak.py --backend postgres $(SOAK_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3* channels.sqlite3* test-output
