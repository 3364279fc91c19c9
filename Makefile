# respine-notebooks: `make help` lists every target. CI runs `make test` (see .ci/run).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint unit nbval lab report bench generate validate derive lock clean

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	@echo "creating the environment in $(VENV)/ from requirements.lock: once, about 40 s to a few minutes (download speed)..."
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-input -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-input --no-deps --no-build-isolation -e .
	touch $(STAMP)
	@echo "environment ready: $(VENV)/"

venv: $(STAMP) ## Create .venv from requirements.lock (again when the lock is newer)

run: $(STAMP) ## The main job: generate (if absent), validate, derive, execute every notebook in place
	$(BIN)/respine-nb run $(if $(JOBS),--jobs $(JOBS),)

test: $(STAMP) lint ## All tests: lint, unit, reference values, CLI, report in a browser, and every stored notebook with nbval (strict)
	@bash scripts/ensure-chromium.sh
	RESPINE_NB_OUT=$$(mktemp -d) $(BIN)/python -m pytest -p no:cacheprovider tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

lint: $(STAMP) ## ruff: lint the package, tests, scripts and notebooks; check the code's formatting
	$(BIN)/ruff check src tests scripts notebooks
	$(BIN)/ruff format --check src tests scripts

unit: $(STAMP) ## Only the unit and reference-value tests (fast)
	$(BIN)/python -m pytest -p no:cacheprovider tests

nbval: $(STAMP) ## Only re-execute the stored notebooks and compare their outputs (strict)
	RESPINE_NB_OUT=$$(mktemp -d) $(BIN)/python -m pytest -p no:cacheprovider notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

report: $(STAMP) ## Static HTML report of the default run in reports/ (OUT=runs/x for another run)
	$(BIN)/respine-nb report $(if $(OUT),--out $(OUT),)

lab: $(STAMP) ## JupyterLab on 127.0.0.1 in the project's environment, opening notebooks/ (prints the URL with its token)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

bench: $(STAMP) ## Benchmark: kernel floor, each notebook, the default run, and a 100x cohort
	$(BIN)/python scripts/bench.py

generate: $(STAMP) ## (Re)write the committed synthetic cohort in data/raw/synthetic/
	$(BIN)/respine-nb generate

validate: $(STAMP) ## Validate a dataset folder: make validate DATA=path (default: the synthetic cohort)
	$(BIN)/respine-nb validate $(or $(DATA),data/raw/synthetic)

derive: $(STAMP) ## Only derive the analysis datasets into data/derived/
	$(BIN)/respine-nb run --derive-only

lock: ## Re-pin requirements.lock from a fresh environment (then update environment.yml)
	rm -rf /tmp/respine-lock && $(PYTHON) -m venv /tmp/respine-lock
	/tmp/respine-lock/bin/pip install --quiet -e '.[test]'
	{ echo "# Every package pinned (pip freeze of a fresh venv, Python 3.11). Regenerate with: make lock"; \
	  /tmp/respine-lock/bin/pip freeze --all --exclude-editable | grep -v "^pip==" | grep -v '^respine'; } > requirements.lock

clean: ## Remove .venv and caches (never data, notebooks or figures)
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
