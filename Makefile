# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
# The first Python >= 3.11 that actually runs (a pyenv shim may exist and still fail).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint format validate build bench bench-quick clean

$(STAMP): pyproject.toml layers/batchops/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/batchops demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The long variants of the fault suite: a 1M-row job in flat memory, many more random interleavings.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -m soak

# Benchmarks (not part of `make test`): the executor against its peers on a stub S3 endpoint,
# about ten minutes on two cores; bench-quick is a one-minute smoke run. Both write
# bench-results/results.json and results.md and print the table; `make bench` ends with the scale
# simulation (issue 7, about three minutes more: bench-results/simulation.json and simulation.md).
# aws-cli pins its own botocore, so it lives in .venv-bench; if it cannot be installed, the bench
# says so and skips that peer.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/bin/aws:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet 'awscli==1.46.3' \
		|| echo "aws-cli could not be installed: the benchmark will skip that peer"

bench: $(STAMP) $(BENCH_VENV)/bin/aws
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.run
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.report_memory
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.scale_inputs
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.hostile_latency
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.s3_client_cpu
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.moto_smoke
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.cold_start $(COLD_START_ARGS)
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.simulation

bench-quick: $(STAMP) $(BENCH_VENV)/bin/aws
	PYTHONPATH=layers/batchops:. $(BIN)/python -m tests.bench.run --quick

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

# `sam build` (the SAM CLI in its own venv, .venv-sam) needs a real python3.12 on PATH; pyenv's
# shim is not enough, so its versions/3.12.1/bin goes first when pyenv is there.
SAM_VENV := .venv-sam
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli

# `make bench` times cold starts over `make build`'s artifacts with Lambda's Python (3.12) when
# both are here, else over the source tree with .venv's Python.
PYTHON312 ?= $(shell for p in "$$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12" python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { command -v "$$p"; break; }; done)
COLD_START_ARGS ?= $(if $(and $(PYTHON312),$(wildcard .aws-sam/build/BatchopsLayer)),--python $(PYTHON312))

# Then the bytecode: SAM ships none, and Lambda's code directories are read-only, so without it
# every cold start compiles every module it imports (about 0.6 s of a 0.9 s start). unchecked-hash:
# `sam package` zips every file dated 1980-01-01, so a timestamp-checked .pyc would be stale.
build: $(SAM_VENV)/bin/sam
	PATH="$$(pyenv root 2>/dev/null)/versions/3.12.1/bin:$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
		$(SAM_VENV)/bin/sam build
	PATH="$$(pyenv root 2>/dev/null)/versions/3.12.1/bin:$$PATH" \
		python3.12 -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

clean:
	rm -rf $(VENV) $(SAM_VENV) $(BENCH_VENV) bench-results .aws-sam .mypy_cache .ruff_cache .pytest_cache
