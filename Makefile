# Orderflow: `make run` starts the local cluster, `make test` runs the whole suite.
# Both install what is missing first (Python venv, Redis, the Dapr runtime).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter .venv is made with: deploy/setup-venv.sh picks Debian's python3.11 (an
# optimised build) where there is one, else python3; PYTHON=... overrides it.
PYTHON ?=
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_DIR ?= $(CURDIR)/.runtime
export ORDERFLOW_RUNTIME_DIR := $(RUNTIME_DIR)
PYTEST_ARGS ?=

.PHONY: help setup venv redis runtime console-deps contract-tools ops-tools k8s-tools k8s-check run up dapr-run down tokens status order-log test test-fast lint format rebuild rebuild-read-models bench chaos compose-check clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: venv redis runtime console-deps contract-tools ops-tools k8s-tools ## install everything that is missing (idempotent)

venv: ## project-local Python virtual environment with pinned dependencies (made again when the interpreter or the pins change)
	@PYTHON="$(PYTHON)" bash deploy/setup-venv.sh $(VENV)

redis: ## Redis server from Debian's package (the project starts its own instance)
	@command -v redis-server >/dev/null || bash -c '. deploy/apt.sh && apt_install redis-server'
	@echo "[setup] $$(redis-server --version | cut -d' ' -f1-3)"

# The console's charts (uPlot from npm, served by the console itself: nothing from a CDN)
# and Debian's Chromium for its browser tests (playwright drives it: `playwright install`
# cannot download here). Both land outside the repository's tracked files.
UPLOT_VERSION := 1.6.32
CONSOLE_VENDOR := $(RUNTIME_DIR)/console
console-deps: ## Chromium (Debian) for the browser tests, uPlot (npm) for the ops console
	@command -v chromium >/dev/null || bash -c '. deploy/apt.sh && apt_install chromium'
	@echo "[setup] $$(chromium --version 2>/dev/null)"
	@test "$$(node -p "require('$(CONSOLE_VENDOR)/node_modules/uplot/package.json').version" 2>/dev/null)" = "$(UPLOT_VERSION)" || { \
	  echo "[setup] installing uPlot $(UPLOT_VERSION) from npm into $(CONSOLE_VENDOR)"; \
	  mkdir -p $(CONSOLE_VENDOR) && npm install --prefix $(CONSOLE_VENDOR) --no-save --no-audit --no-fund --no-package-lock --silent uplot@$(UPLOT_VERSION); }
	@echo "[setup] uPlot $$(node -p "require('$(CONSOLE_VENDOR)/node_modules/uplot/package.json').version")"

# The AsyncAPI parser (npm), which tests/contracts runs on docs/events/asyncapi.json
ASYNCAPI_PARSER_VERSION := 3.6.6
ASYNCAPI_DIR := $(RUNTIME_DIR)/asyncapi
contract-tools: ## the AsyncAPI parser (npm) that validates the published event contracts
	@test "$$(node -p "require('$(ASYNCAPI_DIR)/node_modules/@asyncapi/parser/package.json').version" 2>/dev/null)" = "$(ASYNCAPI_PARSER_VERSION)" || { \
	  echo "[setup] installing @asyncapi/parser $(ASYNCAPI_PARSER_VERSION) from npm into $(ASYNCAPI_DIR)"; \
	  mkdir -p $(ASYNCAPI_DIR) && npm install --prefix $(ASYNCAPI_DIR) --no-save --no-audit --no-fund --no-package-lock --silent @asyncapi/parser@$(ASYNCAPI_PARSER_VERSION); }
	@echo "[setup] @asyncapi/parser $$(node -p "require('$(ASYNCAPI_DIR)/node_modules/@asyncapi/parser/package.json').version")"

ops-tools: ## Prometheus + promtool (Debian), Java and the Zipkin server jar (Maven Central, checksum-verified)
	@bash deploy/setup-ops.sh

k8s-tools: venv ## helm and kubeconform (Go module proxy), Kubernetes and Dapr JSON schemas for offline checks
	@$(PY) -m cluster.kube tools

k8s-check: k8s-tools ## lint the Helm chart (deploy/helm/orderflow) and validate what it renders, offline
	@$(PY) -m cluster.kube

runtime: ## build daprd, placement, scheduler and the dapr CLI (only when the pin changes)
	@bash dapr/build.sh

run: setup ## start the whole local cluster in the foreground (Ctrl-C stops it)
	@$(PY) -m cluster up

up: setup ## start the local cluster in the background
	@$(PY) -m cluster up --detach

down: ## stop a cluster started with `make up`
	@$(PY) -m cluster down

dapr-run: setup ## infrastructure from the launcher, apps through `dapr run -f dapr/dapr.yaml`
	@$(PY) -m cluster up --detach --infra-only
	@go_env="$$($(PY) -c 'from cluster.config import ClusterConfig as C; c = C.from_env(); print(*(f"{k}={v}" for k, v in c.go_env.items()))')" && \
	  secrets="$$($(PY) -m cluster tokens --env)" && \
	  cd dapr && env $$go_env $$secrets ORDERFLOW_REDIS_HOST=127.0.0.1:6380 DAPR_SCHEDULER_HOST_ADDRESS_DNS_A=127.0.0.1:50006 \
	  DAPR_RUNTIME_PATH=$(RUNTIME_DIR)/dapr $(RUNTIME_DIR)/dapr/.dapr/bin/dapr run -f dapr.yaml

tokens: ## the local cluster's Dapr tokens, Redis password and client keys as exports: eval "$$(make -s tokens)"
	@$(PY) -m cluster tokens

status: ## show the state of every cluster process
	@$(PY) -m cluster status

order-log: ## everything one order did, from every process's log (ORDER=ord-...)
	@test -n "$(ORDER)" || { echo "usage: make order-log ORDER=<order id>"; exit 2; }
	@$(PY) -m cluster logs --order $(ORDER)

lint: venv ## ruff format check, ruff check, mypy --strict
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy .

format: venv ## apply ruff's formatting and safe fixes
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

test: setup lint ## lint, then the whole suite against the real runtime
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv redis contract-tools ops-tools ## unit, actor and app tests only (no cluster)
	@$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: venv redis runtime ## starts its own cluster, prints one table of figures and ratios (BENCH_ARGS="--quick", "--soak 600", --help)
	@$(PY) -m bench $(BENCH_ARGS)

CHAOS_ARGS ?= --duration 240
chaos: setup ## the chaos suite: orders under a fault schedule, then every invariant (CHAOS_ARGS=--help)
	@$(PY) -m chaos $(CHAOS_ARGS)

rebuild-read-models: venv ## rebuild every read model from the actors' histories (cluster up; REBUILD_ARGS=--help)
	@$(PY) -m apps.projector.rebuild $(REBUILD_ARGS)

compose-check: ## validate docker-compose.yml (no Docker engine needed)
	@$(PY) -m cluster compose-check docker-compose.yml

clean: ## remove the venv and runtime data (keeps nothing)
	rm -rf $(VENV) $(RUNTIME_DIR)
