# Ledgerflow: the two commands are `make run` and `make test`; everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run run-cluster check test test-cluster test-cluster-smoke temporal-server test-fast lint typecheck audit bench chaos contract screenshots down clean system-deps

## One-time and idempotent: system packages (JDK, Maven), the venv, the project, Kafka's jars.
setup: $(STAMP)
	@$(PY) -m stack.prefetch

$(STAMP): pyproject.toml security/requirements.lock scripts/system-deps.sh
	@bash scripts/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]' -c security/requirements.lock
	@touch $(STAMP)

## Start the whole embedded stack (PostgreSQL, Temporal + Web UI, Kafka, worker, relay, API).
run: setup
	@$(VENV)/bin/ledgerflow up

## The cluster profile: the Temporal server (built from its Go module once, then cached) on
## PostgreSQL with 4 history shards, and three Kafka brokers (RF 3, min.insync.replicas 2).
run-cluster: setup temporal-server
	@$(VENV)/bin/ledgerflow up --profile cluster

## Build (once per version) the Temporal server, its SQL schema tool and the Web UI server
## (stack/temporal_ui_server/) into ~/.cache/ledgerflow.
temporal-server: setup
	@$(PY) -m stack.temporal_server
	@$(PY) -m stack.temporal_ui_server

## The workflow, relay and short chaos suites against the cluster profile.
test-cluster: setup temporal-server
	@LEDGERFLOW_PROFILE=cluster $(PY) -m pytest -p no:cacheprovider -o timeout=900 tests/workflows tests/relay tests/chaos tests/stack/test_cluster.py

## CI's slice of the above: the Temporal server (and UI) built if not cached, then one transfer
## posted end to end through the workflow on it, and the quickest check that the profile is what
## it says (the server on PostgreSQL, 4 shards, the schema tool's newest version, the search
## attributes made through the operator API).
test-cluster-smoke: setup temporal-server
	@LEDGERFLOW_PROFILE=cluster $(PY) -m pytest -p no:cacheprovider -o timeout=900 \
		tests/workflows/test_transfer_workflow.py::test_same_currency_happy_path \
		tests/stack/test_cluster.py::test_temporal_is_the_server_on_postgresql_with_four_shards

## The static checks, each of which fails the build: lint, format, types (strict, tests
## included) and the layer contracts of DESIGN.md (import-linter, [tool.importlinter]).
check: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports

## Set up, check, then run every test against real PostgreSQL, Temporal and Kafka.
test: check
	@$(PY) -m pytest
	@$(MAKE) --no-print-directory test-cluster-smoke

test-fast: setup
	@$(PY) -m pytest -m "not slow"

lint: setup
	@$(VENV)/bin/ruff check .
	@$(PY) -m security.sqlcheck api otp mfa security

## Known vulnerabilities in the pinned dependencies (needs PyPI's JSON API and OSV reachable:
## --strict so that "could not check" fails instead of passing silently).
audit: setup
	@$(VENV)/bin/pip-audit --strict --progress-spinner off -r security/requirements.lock

typecheck: setup
	@$(VENV)/bin/mypy

bench: setup
	@$(PY) -m bench

## The long schemathesis run (every phase, both realms, every staff role; many more cases than CI).
contract: setup
	@LEDGERFLOW_CONTRACT_LONG=1 $(PY) -m pytest -s -p no:cacheprovider tests/api/test_schemathesis.py

## Refresh docs/screenshots/ from a throwaway stack driven in headless Chromium.
screenshots: setup
	@$(PY) scripts/screenshots.py

## The full chaos form: 10,000 transfers under every fault; writes bench/results/chaos-latest.json.
chaos: setup
	@$(PY) -m chaos --transfers 10000 --customers 60

down:
	@test -x $(VENV)/bin/ledgerflow && $(VENV)/bin/ledgerflow down || true

clean: down
	rm -rf .ledgerflow $(VENV)
