# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
# The first Python >= 3.11 that actually runs (a pyenv shim may exist and still fail).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format validate build bench clean

$(STAMP): pyproject.toml layers/batchops/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/batchops demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Benchmarks (not part of `make test`): figures and ratios printed as JSON and a Markdown table.
bench: $(STAMP)
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.manifest_memory

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Offline checks of template.yaml: cfn-lint, and the SAM translator (tests/template).
validate: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pytest -q tests/template

# `sam build` needs python3.12 on PATH; pyenv's shim is not enough (see README).
build:
	PATH="$$(pyenv root 2>/dev/null)/versions/3.12.1/bin:$$PATH" sam build

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache
