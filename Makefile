# Every routine has a target. `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# every environment installs from a committed lock (locks/*.txt: exact versions with hashes); `make lock` refreshes them
LOCK := locks/dev.txt
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | sha256sum | cut -c1-16)
# the aws-cdk CLI's supported Node releases (it prints a warning on older ones; Node 20 still works)
NODE_SUPPORTED := 22 24

export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: install demo test lint format bench clean synth layers lock check-latest check-lowest fuzz docs unit integration infra-tests e2e openapi screenshots

install: $(STAMP)  ## create .venv and install exactly what locks/dev.txt pins, then the project (quick when nothing changed)

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --requirement $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable .
	$(PY) -m pip check --disable-pip-version-check >/dev/null || { $(PY) -m pip check; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

lock: install  ## resolve every lock (locks/*.txt: dev venv, both layers, benchmark venvs) from pyproject's ranges, with hashes, keeping the pins they have; UPGRADE=1: the newest releases
	$(PY) layers/lock.py $(if $(UPGRADE),--upgrade)

check-latest: install layers  ## build both layers and run the tests on the newest releases pyproject allows, in a throwaway venv; changes no lock
	$(PY) layers/check_latest.py

check-lowest: install layers  ## the same on the lowest releases pyproject's floors allow (every floor must pass); changes no lock
	$(PY) layers/check_latest.py --lowest

demo: install  ## the whole loop on the synthesized stack, locally (moto, in-process Lambdas, HTTP API); nothing left running
	$(VENV)/bin/mlops demo

test: install layers node_modules/.package-lock.json  ## the whole suite (moto, no AWS, no docker; the first run builds the layers from the pip registry)
	$(PY) -m pytest -n 2 --durations=10 --cov --cov-report=term

# the suite by tier (make test runs them all): unit is pure (no I/O: tests/unit/conftest.py refuses network connections),
# integration runs the library and handlers on moto in-process, infra-tests synthesizes the CDK app (cdk-nag, cfn-lint,
# the layers), e2e runs the whole loop locally (the retraining workflow on moto's Step Functions, the CLI against it)
unit: install  ## pure tests: no network, no moto, no synth (seconds)
	$(PY) -m pytest -n 2 -q tests/unit

integration: install layers node_modules/.package-lock.json  ## the library, handlers and CLI on moto's in-process AWS (tests/integration)
	$(PY) -m pytest -n 2 -q tests/integration

infra-tests: install layers  ## the synthesized CDK app: template assertions, cdk-nag, cfn-lint, the layers (tests/infra)
	$(PY) -m pytest -n 2 -q tests/infra

e2e: install layers  ## the whole loop locally: the retraining workflow run by moto's Step Functions, the CLI and triggers (tests/workflow)
	$(PY) -m pytest -n 2 -q tests/workflow

screenshots: install  ## the console's three pages (mlops ui) at 1280 px, seeded on moto, in Debian's chromium through Playwright: build/ui/ and docs/images/ui-*.png
	@test -x /usr/bin/chromium || { echo "make screenshots needs /usr/bin/chromium: apt-get install chromium"; exit 1; }
	MLOPS_UI_SCREENSHOTS=docs/images $(PY) -m pytest -q -p no:xdist -p no:cacheprovider tests/integration/test_ui_browser.py -k screenshots

openapi: install  ## rewrite docs/openapi.json from the inference app (the committed contract tests/unit/test_openapi_contract.py checks)
	$(PY) -m tests.helpers.openapi

fuzz: install  ## the inference API's property tests at a larger budget (MLOPS_FUZZ_EXAMPLES, 5,000 requests per property), random seeds
	MLOPS_FUZZ_EXAMPLES=$${MLOPS_FUZZ_EXAMPLES:-5000} $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_inference_properties.py -k documented_route

lint: install  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: install  ## docs/cli.md generated from the mlops app, then the manual (docs/, mkdocs.yml) into build/site; --strict: a broken link fails
	$(PY) -m typer serverless_mlops.cli utils docs --name mlops --title "CLI reference" --output docs/cli.md
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

layers: install  ## build the Lambda layers without docker (cached under layers/build/ by a hash of their requirements)
	$(PY) layers/build.py inference
	$(PY) layers/build.py training

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

synth: install layers node_modules/.package-lock.json  ## cdk synth into cdk.out/ (no AWS credentials; infra/deployment.yaml, or CONFIG=path; PIPELINE=true: the deploy pipeline, GITHUB=true: the GitHub Actions role and each stage, from infra/pipeline.yaml)
	@major=$$(node --version | sed -E 's/^v([0-9]+).*/\1/'); [ "$$major" -ge $(firstword $(NODE_SUPPORTED)) ] || \
		echo "note: node $$(node --version) is older than the pinned aws-cdk CLI supports (Node $(subst $() ,/,$(NODE_SUPPORTED))); synth works, but deploy from a supported Node"
	CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 \
		npx --no-install cdk synth --no-notices --quiet $(if $(CONFIG),-c config=$(CONFIG)) $(if $(PIPELINE),-c pipeline=true) $(if $(GITHUB),-c github=true)

bench: install  ## every benchmarks/*.py (not _helpers) in turn (each prints its figures); figures go into docs/benchmarks.md
	@set -e; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(PY) $$script; done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache cdk.out node_modules build layers/build
