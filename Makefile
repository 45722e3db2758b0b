# microcred — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
UV ?= uv
PY := $(UV) run --frozen python

.PHONY: install demo up down status logs test unit-tests handler-tests integration-tests e2e-tests interop-tests lint bench-e2e bench-ingest bench-signing bench-registry bench-scale clean

install: ## install Python deps (uv.lock), the JS interop verifier and the AsyncAPI parser (package-lock.json)
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@# The browser tests drive Debian's chromium (Playwright cannot fetch its own browser here).
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@# promtool checks the alerting rules in deploy/prometheus (Debian's prometheus package; its server
	@# is enabled and started on a systemd host, not started in a container without an init system).
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	@if [ -f tests/interop/package-lock.json ]; then npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error; fi
	@if [ -f tests/contract/package-lock.json ]; then npm ci --prefix tests/contract --no-audit --no-fund --loglevel=error; fi

demo: install ## start the backbone, publish a realistic batch, show what happened
	$(PY) -m microcred_devstack up
	$(PY) -m microcred_devstack demo

up: install ## run the backbone and leave it running
	$(PY) -m microcred_devstack up

down: ## stop exactly what `up` started
	$(PY) -m microcred_devstack down

status:
	$(PY) -m microcred_devstack status

logs:
	$(PY) -m microcred_devstack logs

test: install ## lint and type-check, then every test: unit, contract, interop, integration and end-to-end (real Kafka + PostgreSQL)
	$(MAKE) --no-print-directory lint
	$(UV) run --frozen pytest --durations=20

unit-tests: install
	$(UV) run --frozen pytest -m "not integration and not interop"

handler-tests: install ## the middle layer: every service's use cases and batch handlers against a real PostgreSQL, no broker (about a minute)
	$(UV) run --frozen pytest services/assessment/tests/handlers services/issuance/tests/handlers services/registry/tests/handlers services/notify/tests/handlers

integration-tests e2e-tests: install
	$(UV) run --frozen pytest -m integration

interop-tests: install
	$(UV) run --frozen pytest -m interop

lint: ## ruff, mypy over the trees in [tool.mypy] files, the architecture's import contracts ([tool.importlinter])
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

bench-e2e: install ## end-to-end throughput vs a bare-broker relay (not a test); INGEST=http|http-batch: results in over HTTP
	$(PY) bench/e2e/run.py $(if $(INGEST),--ingest $(INGEST))

bench-ingest: install ## the way in only: Kafka publishing, one result per HTTP request, HTTP batches, side by side
	$(PY) bench/e2e/http_ingest.py

bench-signing: install ## signing and verification speed vs the JavaScript peer (not a test)
	$(PY) bench/signing/run.py

bench-registry: install ## registry p50/p99 at 10k, 1M and 10M stored credentials (not a test; ~35 GB of disk, hours)
	$(PY) bench/registry/run.py $(BENCH_REGISTRY_ARGS)

bench-scale: install ## one instance per service vs two, each under a fixed CPU quota (cgroup v1, root; not a test)
	$(PY) bench/scale/run.py

clean: down
	rm -rf .state
