# Every routine has a target. `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS := inference,training,parquet,cli,local,infra,dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo test lint format bench clean synth layers

install: $(STAMP)  ## create .venv and install the project with every group (quick when nothing changed)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: install  ## the whole loop on the synthesized stack, locally (moto, in-process Lambdas, HTTP API); nothing left running
	$(VENV)/bin/mlops demo

test: install layers  ## the whole suite (moto, no AWS, no docker; the first run builds the layers from the pip registry)
	$(PY) -m pytest -n 2 --durations=10 --cov --cov-report=term

lint: install  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

layers: install  ## build the Lambda layers without docker (cached under layers/build/ by a hash of their requirements)
	$(PY) layers/build.py inference
	$(PY) layers/build.py training

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

synth: install layers node_modules/.package-lock.json  ## cdk synth into cdk.out/ (no AWS credentials; infra/deployment.yaml, or CONFIG=path)
	CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 \
		npx --no-install cdk synth --no-notices --quiet $(if $(CONFIG),-c config=$(CONFIG))

bench: install  ## every benchmarks/*.py (not _helpers) in turn (each prints its figures); figures go into README.md
	@set -e; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script; done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache cdk.out node_modules build layers/build
