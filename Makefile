# Set-up is part of every target: the first `make train` or `make test` builds .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install train lint test test-slow check-wheel bench baselines docs data check-symmetry clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The main job with its defaults: the H2O siVQLM (symmetry breaking on), results under results/h2o/.
train: $(STAMP)
	$(BIN)/siqml train +molecule=h2o

## ruff's checks (pyproject.toml [tool.ruff]); part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .

## Default test suite (lint first; every invariance and agreement test; slow tests excluded), one worker
## per core, each test file on one worker (its module fixtures are built once).
test: lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

## The wheel in a fresh virtual environment (not editable): `siqml train` in an empty directory (minutes:
## every dependency is installed anew; CI runs it as its own step).
check-wheel:
	PYTHON=$(PYTHON) scripts/check_wheel.sh

## Speed benchmarks; writes results/bench/ (scan.md and scan.png: the qubit scan 4..16 side by side with
## TensorCircuit-NG, resumable from scan.jsonl; speed.md; then peers.md: side by side against
## TensorCircuit-NG, PennyLane and EstimatorQNN, whose extra `bench` is installed first).
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python scripts/bench.py --scan
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_peers.py

## The classical anchor MACE: installs the `baselines` extra (mace-torch, PyTorch) into .venv, so that
## `siqml train +molecule=<name> model.family=mace` runs (docs/accuracy.md, "Classical anchors: MACE").
BASELINES_STAMP := $(VENV)/.baselines-stamp

$(BASELINES_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,baselines]'
	touch $(BASELINES_STAMP)

baselines: $(BASELINES_STAMP)

## The documentation site (docs/, mkdocs.yml) into site/, in strict mode: a broken link or a
## docstring the API pages cannot render fails the build. Installs the `docs` extra first.
DOCS_STAMP := $(VENV)/.docs-stamp

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

## Regenerate the shipped reference data with PySCF (minutes; resumable).
data: $(STAMP)
	$(BIN)/siqml data +molecule=lih
	$(BIN)/siqml data +molecule=h2o

check-symmetry: $(STAMP)
	$(BIN)/siqml check-symmetry +molecule=h2o

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis site
