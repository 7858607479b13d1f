# Mahnwesen: `make run` (install, migrate, demo data, web + worker + beat), `make test` and `make test-fast`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export DJANGO_DEBUG ?= true
# What `make run` leaves for the shell: manage.py reads it for variables the environment does not set,
# so `.venv/bin/python manage.py import_orders ...` works afterwards without exporting DJANGO_DEBUG.
DEV_ENV ?= .env.dev

.PHONY: install run test test-fast lint bench bench-payments bench-sending bench-letters clean

$(BIN)/activate: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/activate

install: $(BIN)/activate

$(DEV_ENV):
	@printf '%s\n' '# Written by make run: development settings that manage.py reads for variables not set in the' \
		'# environment (never gunicorn or Celery). Delete it, or set the variable, to change them.' \
		'DJANGO_DEBUG=true' > $(DEV_ENV)

run: install $(DEV_ENV)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) scripts/run_all.py

test: install
	$(BIN)/pytest

# the core run: everything but tests/integration/ (Celery worker and broker, concurrency, SIGKILL, browser)
test-fast: install
	$(BIN)/pytest -m "not integration"

lint: install
	$(BIN)/ruff check .

bench: install
	DJANGO_DEBUG=false $(PY) scripts/bench.py $(BENCH_ARGS)

# reminder letters: one letter, and 1,000 letters as one PDF (docs/benchmarks-letters.md)
bench-letters: install
	DJANGO_DEBUG=false $(PY) scripts/bench_letters.py $(BENCH_ARGS)

# sending: 10,000 due reminders against the provider simulator at 0 and 50 ms, one and two Celery
# workers, the per-order design, the rate limit and a 300-order Notify (PostgreSQL and Redis;
# writes docs/benchmarks-sending.md)
bench-sending: install
	DJANGO_DEBUG=false $(PY) scripts/bench_sending.py $(BENCH_ARGS)

# camt.053 import: 100,000 credit entries against 1,000,000 orders (PostgreSQL only; BENCH_ARGS="--entries 10000")
bench-payments: install
	DJANGO_DEBUG=false $(PY) scripts/bench_payments.py --output docs/benchmarks-payments.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3* var/* staticfiles
