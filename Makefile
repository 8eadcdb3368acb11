# Earshot developer tasks: `make help` lists them.
#
# Every target that runs the app goes through config/embedded.py: when DATABASE_URL or
# REDIS_URL is unset (or empty) it starts a PostgreSQL or Redis of its own under ./var,
# and stops it afterwards.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Variables in ./.env (plain KEY=value lines, see .env.example) reach every command below.
# As with any makefile assignment, a value in .env beats the shell's; one given on the
# command line (make test DATABASE_URL=...) beats both.
ifneq ($(wildcard .env),)
include .env
export $(shell sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' .env)
endif

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the pins change.
STAMP := $(VENV)/.installed
EMBEDDED := $(BIN)/python -m config.embedded --
PYTEST_ARGS ?=
BENCH_ARGS ?=
CHAOS_ARGS ?=
# `make load`: how long the agents work (seconds, or 90s / 5m), and more options for bench/load.py.
LOAD_DURATION ?= 300
LOAD_ARGS ?=
# Which Procfile.dev processes `make run` starts; empty: all (every platform's simulator).
DEMO_PROCESSES ?=

# `make run`: the X API simulator stands in for X unless .env points elsewhere; the other
# platforms' simulators are the demo brand's sources (responses/services/demo.py).
DEMO_ENV := \
	EARSHOT_DEVELOPMENT=1 \
	X_API_BASE_URL="$${X_API_BASE_URL:-http://127.0.0.1:8765}" \
	X_BEARER_TOKEN="$${X_BEARER_TOKEN:-demo-bearer}" \
	X_CONSUMER_KEY="$${X_CONSUMER_KEY:-demo-consumer-key}" \
	X_CONSUMER_SECRET="$${X_CONSUMER_SECRET:-demo-consumer-secret}" \
	X_ACCESS_TOKEN="$${X_ACCESS_TOKEN:-demo-access-token}" \
	X_ACCESS_TOKEN_SECRET="$${X_ACCESS_TOKEN_SECRET:-demo-access-secret}" \
	PYTHONUNBUFFERED=1 \
	PATH="$(CURDIR)/$(BIN):$$PATH"

# Runs inside the embedded servers. honcho is told not to read .env (--env /dev/null): make
# has already exported it, and honcho's copy would override the embedded servers' URLs.
# honcho ignores SIGHUP (a closed terminal): config/embedded.py turns it into a SIGTERM, on
# which honcho stops every process it started; dying of the hang-up would orphan them.
RUN_SCRIPT := \
	python manage.py migrate --noinput && \
	python manage.py seed_demo && \
	python manage.py collectstatic --noinput --verbosity 0 && \
	echo && echo "Earshot: http://127.0.0.1:8000/  (Ctrl-C stops everything)" && echo && \
	trap "" HUP && exec honcho start --procfile Procfile.dev --env /dev/null $(DEMO_PROCESSES)

.PHONY: help install run test bench chaos load lint fmt chromium clean distclean

help: ## Show this help
	@echo "Earshot: make TARGET"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "DATABASE_URL / REDIS_URL unset: PostgreSQL / Redis are started under ./var for the run."

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: Earshot needs Python 3.11 (make PYTHON=/path/to/python3.11)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "Could not create $(VENV). On Debian/Ubuntu: apt-get install python3.11-venv" >&2; exit 1; }

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install -c requirements.lock -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install the pinned dependencies (only when they changed)

run: $(STAMP) ## Migrate, seed the demo, then run web, worker, beat and every platform's simulator
	@$(DEMO_ENV) $(EMBEDDED) bash -c '$(RUN_SCRIPT)'

test: $(STAMP) chromium ## Run the whole test suite (PYTEST_ARGS="..." to pass options)
	@mkdir -p var/static  # STATIC_ROOT: whitenoise warns in every test when it is missing
	EARSHOT_DEVELOPMENT=1 $(EMBEDDED) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Run the benchmarks (BENCH_ARGS="--quick" to pass options)
	EARSHOT_DEVELOPMENT=1 $(EMBEDDED) $(BIN)/python -m bench $(BENCH_ARGS)

# Not through $(EMBEDDED): chaos starts PostgreSQL, Redis, the X simulator and the workers of
# its own under var/chaos/ (it restarts them), and uses no other server.
chaos: $(STAMP) ## Faults against real processes: lost, doubled, answered twice? (CHAOS_ARGS="--quick")
	EARSHOT_DEVELOPMENT=1 $(BIN)/python -m bench.chaos $(CHAOS_ARGS)

load: $(STAMP) ## 50 agents work a 100k desk for 5 min (LOAD_DURATION=60 shortens it)
	EARSHOT_DEVELOPMENT=1 $(EMBEDDED) $(BIN)/python -m bench.load --duration $(LOAD_DURATION) $(LOAD_ARGS)

lint: $(STAMP) ## Check lint and formatting (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix-only .
	$(BIN)/ruff format .

# The browser tests drive Debian's Chromium; without apt, Playwright's own build stands in.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null; then \
		sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "Installing Debian's chromium for the browser tests"; \
		$$sudo apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "apt-get not found: installing Playwright's Chromium instead" >&2; \
		$(BIN)/playwright install chromium; \
	fi

clean: ## Remove ./var (embedded databases, static files, beat schedule); keeps .venv
	@for pidfile in var/pg/postmaster.pid var/redis/redis.pid; do \
		if [ -f "$$pidfile" ] && kill -0 "$$(head -n1 "$$pidfile")" 2>/dev/null; then \
			echo "A server from $$pidfile is still running: stop make run/test first." >&2; exit 1; \
		fi; \
	done
	rm -rf var .pytest_cache .ruff_cache

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV) *.egg-info
