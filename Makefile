# Every target builds its own virtualenv: python3 and make are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PKGS   := estimator siblings

.PHONY: test demo bench bench-latency lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

lint: $(VENV)/.test-installed
	$(BIN)/ruff check $(PKGS) tests benchmarks

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy $(PKGS)

test: lint typecheck
	$(BIN)/pytest -q

demo: $(VENV)/.local-installed
	$(BIN)/siblings simulate

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/throttle_load.py
	$(BIN)/python benchmarks/estimator_latency.py

bench-latency: $(VENV)/.local-installed
	$(BIN)/python benchmarks/estimator_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
