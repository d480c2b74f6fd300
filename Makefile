# make demo  — venv, install, migrate, demo data, and web + worker + beat on embedded
#              defaults (SQLite, filesystem broker, file cache). Ctrl-C stops all.
# make test  — install test deps and run the whole suite on PostgreSQL + Redis.
# make bench — benchmarks: one table of figures against same-run baselines, written to
#              bench/RESULTS.md (BENCH="audit usage" for some; BENCH_* sizes, see the README).
# make lint  — ruff, the layers contract (import-linter) and mypy.
# make chaos — the fault suite (tests/chaos): its own PostgreSQL, Redis and RabbitMQ,
#              gunicorn, a worker and beat, killed and restarted during work. Not in `make test`.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/transbot
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_VAR_DIR ?= $(CURDIR)/var/test
# pytest-xdist workers; each gets its own test database, Redis DB (TEST_REDIS_URL's + N) and
# VAR_DIR (see the top of trans_bot/settings.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
# Two database roles, as in production: TEST_DATABASE_URL's role (the owner; it may create
# databases and roles) creates and migrates the test database, then the tests connect as
# "<test database>_app", a role conftest.py makes that owns nothing (row-level security and
# the audit trail's grants hold for it).
TEST_ENV = DATABASE_URL=$(TEST_DATABASE_URL) DATABASE_MIGRATE_URL=$(TEST_DATABASE_URL) \
	CACHE_URL=$(TEST_REDIS_URL) CELERY_BROKER_URL=$(TEST_REDIS_URL) VAR_DIR=$(TEST_VAR_DIR)

# The chaos suite runs once per broker; CHAOS_BROKERS=redis skips RabbitMQ.
CHAOS_BROKERS ?= redis rabbitmq
CHAOS_VAR_DIR ?= $(CURDIR)/var/chaos
# The pytest process itself touches no shared service: everything it starts is its own.
CHAOS_ENV = CHAOS=1 DATABASE_URL=sqlite:///$(CHAOS_VAR_DIR)/pytest.sqlite3 CACHE_URL=locmemcache:// \
	CELERY_BROKER_URL=memory:// VAR_DIR=$(CHAOS_VAR_DIR)

.PHONY: demo test chaos bench bench-scale-data bench-scale-clean lint install install-dev migrate clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	bash scripts/demo.sh

test: install-dev
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-wrk.sh
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

chaos: install-dev
	@for broker in $(CHAOS_BROKERS); do \
		echo "== chaos suite, broker: $$broker"; \
		$(CHAOS_ENV) CHAOS_BROKER=$$broker $(PY) -m pytest tests/chaos -p no:cacheprovider $(PYTEST_ARGS) || exit 1; \
	done

# Benchmarks use a Redis DB of their own (cache and broker); bench/run.py clears its routing
# state (regions:routing:v1) before and after every bench, and each bench gets a database
# copied from one migrated template, all dropped at the end.
BENCH_DATABASE_URL ?= $(TEST_DATABASE_URL)
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/15
BENCH_ENV = DATABASE_URL=$(BENCH_DATABASE_URL) CACHE_URL=$(BENCH_REDIS_URL) \
	CELERY_BROKER_URL=$(BENCH_REDIS_URL) VAR_DIR=$(TEST_VAR_DIR)

bench: install-dev
	bash scripts/ensure-wrk.sh
	$(BENCH_ENV) DEBUG=false $(PY) bench/run.py $(BENCH)

# The 100 M usage events bench_scale reads (make bench BENCH=scale): built once at low
# priority, resumable month by month, kept between runs (about 35 GB); clean drops it.
bench-scale-data: install-dev
	$(BENCH_ENV) nice -n 19 $(PY) bench/bench_scale.py build

bench-scale-clean: install-dev
	$(BENCH_ENV) $(PY) bench/bench_scale.py clean

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

clean:
	rm -rf var staticfiles
