# meterwatch: the two commands of the README, and the tools behind them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TOOLS_STAMP := .venv-tools/.installed
SDK_STAMP := .venv-sdk/.installed

.PHONY: demo test check unit bench azurite clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml package.json
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	npm install --no-audit --no-fund --silent
	touch $(STAMP)

## make demo: set up .venv and Azurite, run the main job (results and pictures in demo-output/)
demo: $(STAMP)
	scripts/azurite.sh start
	$(BIN)/meterwatch demo --output demo-output

$(TOOLS_STAMP): requirements-tools.txt
	scripts/tools-venv.sh $(PY)

# One venv per azure-ai-anomalydetector release the SDK tests drive (see requirements-sdk.txt).
$(SDK_STAMP): requirements-sdk.txt scripts/sdk-venvs.sh
	scripts/sdk-venvs.sh $(PY)

## make check: the fast static checks (lint, format, strict types, the import-layer contract)
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## make unit: the fast unit tier only (no Azurite)
unit: $(STAMP)
	$(BIN)/pytest -q -m unit

## make test: check, then every test tier (Azurite is started by the tests)
test: check $(TOOLS_STAMP) $(SDK_STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	bench/run

azurite: $(STAMP)
	scripts/azurite.sh start

clean:
	rm -rf $(VENV) .venv-tools .venv-sdk node_modules .azurite demo-output .pytest_cache .mypy_cache .ruff_cache
