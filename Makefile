# quantserve: the README's commands. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JAVA_HINT := Spark needs Java 17: apt-get install -y openjdk-17-jre-headless

.DEFAULT_GOAL := help
.PHONY: help install java test-tools serve pipeline test lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# uv installs the same pins from constraints.txt as pip would, ~3x faster from a cold
# cache (docs/benchmarks.md); pip bootstraps it, pinned, into the fresh venv. uv reads
# no pip.conf: a mirror is UV_INDEX_URL / UV_EXTRA_INDEX_URL, its cache UV_CACHE_DIR.
UV_VERSION := 0.13.9
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt \
	    --config-settings editable_mode=compat -e '.[dev]' --upgrade-package pip pip
	@touch $@

install: $(STAMP) ## Create .venv and install the pinned dependencies

# The `mlops` extra (DVC, the notebooks' kernel) and, in a venv of its own, the full
# MLflow server: its pins (gunicorn<27) clash with the service's. The tests use both;
# `make serve` installs neither.
MLOPS_STAMP := $(VENV)/.mlops-stamp
MLFLOW_VENV := .venv-mlflow
$(MLOPS_STAMP): $(STAMP) tests/tracking/mlflow-server.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt \
	    --config-settings editable_mode=compat -e '.[dev,mlops]'
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(BIN)/uv pip install --quiet --python $(MLFLOW_VENV)/bin/python \
	    -r tests/tracking/mlflow-server.txt
	@touch $@

.PHONY: mlops
mlops: $(MLOPS_STAMP) ## Install DVC, the notebooks' kernel and an MLflow server (.venv-mlflow)

# Each notebook runs in a python3 kernel of .venv on the settings' data/ and models/
# (QUANTSERVE_DATA_DIR, QUANTSERVE_MODELS_DIR); the executed copies go to
# test-artifacts/notebooks/ (jupyter-execute writes relative to the notebook's folder),
# the committed ones stay stripped. A notebook whose input is missing stops, naming the
# command that builds it; the others still run, and the target fails.
.PHONY: notebooks
notebooks: mlops ## Run notebooks/ on your data and models; executed copies in test-artifacts/notebooks/
	mkdir -p test-artifacts/notebooks
	@status=0; for notebook in notebooks/*.ipynb; do \
	    echo "running $$notebook"; \
	    $(BIN)/jupyter-execute --kernel_name=python3 \
	        --output='../test-artifacts/notebooks/{notebook_name}' $$notebook || status=1; \
	done; exit $$status

# dvc.yaml's stages, run with this venv's quantserve: only those whose code, data or
# params changed since the last run (docs/dvc.md).
.PHONY: repro
repro: mlops java ## DVC pipeline: rerun the stages of dvc.yaml whose inputs changed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

java:
	@command -v java >/dev/null 2>&1 || { echo "java not found. $(JAVA_HINT)"; exit 1; }

# Development mode unless QUANTSERVE_DEV_MODE says otherwise: with no API keys configured
# every caller is admin; once keys are configured (QUANTSERVE_API_KEYS or the config
# file) they are required, dev mode or not.
serve: install java ## Build a model from the embedded data if none exists, then serve on :8000 (dev mode)
	$(BIN)/quantserve pipeline --if-missing
	QUANTSERVE_DEV_MODE=$${QUANTSERVE_DEV_MODE:-1} $(BIN)/quantserve serve

pipeline: install java ## Re-run ingest, features and training (a new model version)
	$(BIN)/quantserve pipeline

# Debian's prometheus and wrk for the monitoring and load tests, installed as root when
# missing (those tests skip without them).
test-tools:
	@sh tests/install-test-tools.sh

test: install mlops java test-tools ## Run the whole test suite
	$(BIN)/pytest

# `make test` runs tests/fuzz with 10 examples per operation (~2,600 requests, ~1 min);
# QUANTSERVE_FUZZ_EXAMPLES=1000 make fuzz goes further.
.PHONY: fuzz
fuzz: install java ## Fuzz the API from its OpenAPI schema, 100 examples per operation (~3 min)
	QUANTSERVE_FUZZ_EXAMPLES=$${QUANTSERVE_FUZZ_EXAMPLES:-100} $(BIN)/pytest -q -p no:cacheprovider tests/fuzz

# `make test` runs tests/faults with 3 s of load per phase (~5 min); `make faults` holds
# each phase for QUANTSERVE_FAULT_SECONDS (30 by default).
.PHONY: faults
faults: install java ## Faults under load: model swap, bad model, worker SIGKILL, features, Spark, audit
	QUANTSERVE_FAULT_SECONDS=$${QUANTSERVE_FAULT_SECONDS:-30} $(BIN)/pytest -q -p no:cacheprovider tests/faults

.PHONY: screenshots
screenshots: install java test-tools ## Browser tests of the dashboard; its screenshot goes to docs/images/
	$(BIN)/pytest -q tests/web
	mkdir -p docs/images && cp test-artifacts/browser/dashboard.png docs/images/dashboard.png

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# pip-audit asks a vulnerability service (PyPI's JSON API by default) about every pin of
# constraints.txt. It asks first about a canary pin with published advisories: when the
# service reports none for it (no network, or an index mirror without that API), the
# audit says it was not done and is skipped, never passed. Otherwise any advisory, and
# any pin the service could not check (--strict), fails.
AUDIT_CANARY := requests==2.31.0
AUDIT_SERVICE ?= --vulnerability-service pypi
# Accepted advisories, each with its reason: --ignore-vuln ID (none so far).
AUDIT_IGNORE :=
AUDIT := $(BIN)/pip-audit --no-deps --disable-pip --progress-spinner off $(AUDIT_SERVICE)

.PHONY: security
security: install ## bandit over the code, pip-audit over the pinned packages
	$(BIN)/bandit -c pyproject.toml -r app training optimizer backtest -q
	@echo '$(AUDIT_CANARY)' >$(VENV)/pip-audit-canary.txt
	@if timeout 120 $(AUDIT) -f json -r $(VENV)/pip-audit-canary.txt 2>/dev/null \
	    | grep -q '"vulns": \[{'; then \
	    echo "pip-audit: auditing constraints.txt"; \
	    timeout 900 $(AUDIT) --strict $(AUDIT_IGNORE) -r constraints.txt; \
	else \
	    echo "pip-audit: vulnerability service unreachable, not audited (it reported no" \
	        "advisory for the canary $(AUDIT_CANARY), which has published ones)"; \
	fi

bench: bench-load ## Benchmarks: the serving load test (figures go to docs/benchmarks.md)

.PHONY: bench-load
bench-load: install java ## Load: quantserve vs a bare FastAPI endpoint under wrk, 16 connections (~2 min)
	$(BIN)/quantserve pipeline --if-missing
	$(BIN)/python -m bench.load

.PHONY: bench-first-run
bench-first-run: ## The first `make serve` of a fresh clone, empty package caches (~4 min)
	bench/first_run.sh

.PHONY: bench-optimizer
bench-optimizer: install ## Optimizer: quantserve vs naive cvxpy vs skfolio, 20-2000 assets (~3 min)
	$(BIN)/python -m bench.optimizer

.PHONY: bench-concurrency
bench-concurrency: install ## Optimizer: concurrent same-shape solves, 1 vs 2 vs 4 compiled copies (~2 min)
	$(BIN)/python -m bench.concurrent_solves

.PHONY: bench-stream
bench-stream: install java ## Live data: a landed bar file to /v1/forecasts answering its day, 20 days (~4 min)
	$(BIN)/quantserve pipeline --if-missing
	$(BIN)/python -m bench.stream_latency

.PHONY: bench-backtest
bench-backtest: install ## Back-test: seconds per rebalance, quantserve vs cvxportfolio, 500 assets (~2 min)
	$(BIN)/python -m bench.backtest

clean: ## Remove the venv, data outputs and trained models
	rm -rf $(VENV) $(MLFLOW_VENV) data models/*/ .pytest_cache .mypy_cache .ruff_cache
