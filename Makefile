# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_OLLAMA_PORT ?= 11999
# Timing-sensitive end-to-end tests (browser, several processes on 2 cores) get one more
# try; a rerun is reported in the summary ("R"), so flakiness stays visible.
PYTEST_ARGS ?= --reruns 1 --reruns-delay 1 -rfEsR

.PHONY: run demo test lint format bench messages install install-dev chromium nginx services migrate static clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

static: install
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

## Serve the app with daphne on http://$(HOST):$(PORT) (SQLite by default).
run: migrate static
	@echo "Serving on http://$(HOST):$(PORT)/  (Ctrl+C to stop)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) webui.asgi:application

## Like `run`, with the Ollama double as a simulated Ollama.
demo: migrate static
	@echo "Simulated Ollama on 127.0.0.1:$(DEMO_OLLAMA_PORT); serving on http://$(HOST):$(PORT)/"
	$(BIN)/python -m tests.ollama_double --port $(DEMO_OLLAMA_PORT) --tokens-per-second 40 & \
	DOUBLE=$$!; trap "kill $$DOUBLE" EXIT INT TERM; \
	OLLAMA_HOST=http://127.0.0.1:$(DEMO_OLLAMA_PORT) OLLAMA_SIMULATED=1 \
	$(BIN)/daphne -b $(HOST) -p $(PORT) webui.asgi:application

## Debian's Chromium for the browser tests, and a CJK font so Chinese pages render (not boxes).
chromium:
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q . && command -v msgfmt >/dev/null 2>&1; } || { \
	  echo "Installing Debian's chromium, fonts-noto-cjk and gettext (catalog checks) for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk gettext >/dev/null; }

nginx:
	@command -v nginx >/dev/null 2>&1 || { \
	  echo "Installing Debian's nginx for the reverse-proxy test (tests/scale/test_proxy.py)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0

## Install what the tests need, check style, run the whole suite: first on SQLite with the
## in-memory channel layer (browser tests included), then on PostgreSQL with the Redis layer
## (plus the several-worker tests), then the full-size load test on PostgreSQL alone. In CI
## (CI=true) a missing PostgreSQL or Redis fails the run;
## a failure in either pass fails `make test`.
test: install-dev chromium nginx lint
	$(BIN)/python manage.py makemigrations --check --dry-run >/dev/null
	$(BIN)/python -m pytest -n 2 -m "not engines" $(PYTEST_ARGS)
	@if [ -n "$$CI" ] || { pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }; then \
	  echo "== the suite again on PostgreSQL and Redis =="; \
	  DATABASE_URL=$(TEST_POSTGRES_URL) REDIS_URL=$(TEST_REDIS_URL) \
	    $(BIN)/python -m pytest -n 2 -m "not browser and not sqlite" $(PYTEST_ARGS) && \
	  echo "== the full-size load test on PostgreSQL (in-memory channel layer) ==" && \
	  DATABASE_URL=$(TEST_POSTGRES_URL) \
	    $(BIN)/python -m pytest tests/security/test_load.py $(PYTEST_ARGS); \
	else echo "PostgreSQL or Redis not running here: skipped their run (CI always runs it)"; fi

bench: install-dev
	$(BIN)/python -m tests.bench

## Refresh translation catalogs (needs gettext); compiled .mo files are committed.
messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --ignore=.venv --ignore=data
	$(BIN)/python manage.py makemessages -d djangojs -l zh_Hans --ignore=.venv --ignore=data --ignore=static/vendor
	$(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) data/staticfiles
