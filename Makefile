# Railyard's front door. `make run` starts a working stack on a bare machine; `make test`, `make lint`
# are what CI runs (see .ci/run).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install lint test bench run clean distclean

help:
	@echo "make install    create $(VENV) and install Railyard with its dev tools"
	@echo "make run        migrate, create the demo tenant, start web (:8000), worker, beat and"
	@echo "                the SFTP gateway (:2222); writes a development .env on its first start"
	@echo "make test       run the test suite (PYTEST_ARGS='-k name -x' to narrow it)"
	@echo "make lint       ruff check, ruff format --check, mypy"
	@echo "make bench      run the benchmarks (against PostgreSQL when DATABASE_URL is set)"
	@echo "make clean      remove var/ and caches (keeps $(VENV))"
	@echo "make distclean  clean, and remove $(VENV) too"

install: $(INSTALLED)

# Re-installs only when pyproject.toml changes (or the virtualenv is missing).
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Railyard needs Python 3.11+; $(PYTHON) is $$($(PYTHON) --version 2>&1)." >&2; exit 1; }
	@test -x $(BIN)/python || { echo "+ $(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

lint: $(INSTALLED)
	@status=0; \
	for command in "ruff check ." "ruff format --check ." "mypy ."; do \
		echo "+ $$command"; \
		$(BIN)/$$command || status=1; \
	done; \
	exit $$status

test: $(INSTALLED)
	$(BIN)/pytest $(PYTEST_ARGS)

# Each benchmark prints its rates beside a reference measured in the same run (BENCH_ARGS, e.g.
# "--rows 100000" or "--only merge", narrows it).
bench: $(INSTALLED)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

# Without REDIS_URL the stack runs on the embedded Redis: start it before anything imports the
# settings and stop it however honcho ends (a process exiting, Ctrl-C, SIGTERM). honcho runs each
# Procfile process in its own session, so Ctrl-C reaches honcho alone and honcho stops them.
run: export DEBUG ?= 1
# Development: tenants' connections may reach services on this machine (never Railyard's own).
run: export EGRESS_ALLOW ?= 127.0.0.0/8,::1
run: export PATH := $(CURDIR)/$(BIN):$(PATH)
run: $(INSTALLED)
	@python -m config.devenv; \
	if [ -z "$${REDIS_URL:-}" ]; then \
		trap 'echo "+ python -m config.embedded_redis stop"; python -m config.embedded_redis stop' EXIT; \
		echo "+ python -m config.embedded_redis start"; \
		python -m config.embedded_redis start; \
	fi; \
	echo "+ python manage.py migrate"; \
	python manage.py migrate --no-input; \
	echo "+ python manage.py bootstrap_demo"; \
	python manage.py bootstrap_demo; \
	trap ':' INT TERM; \
	echo "+ honcho start -f Procfile"; \
	status=0; honcho start -f Procfile || status=$$?; \
	case $$status in 0|130|143) ;; *) exit $$status ;; esac

clean:
	@if [ -x $(BIN)/python ] && [ -d var/redis ]; then \
		$(BIN)/python -m config.embedded_redis stop "$(CURDIR)/var/redis" >/dev/null; \
	fi
	rm -rf var .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
