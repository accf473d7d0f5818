# Every target builds its own virtualenv: python3 and make are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PKGS   := estimator siblings

.PHONY: test docs demo dist-check bench bench-latency lint typecheck clean

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

# The docs site, into site/: --strict fails on a broken link or a page missing from the nav.
docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The whole suite (slow tests included), in a random order (the header shows the seed), in three
# worker processes on two cores (pytest-xdist; each starts its own moto server on a free port):
# the simulator's runs and the subprocess tests wait on the wall clock part of the time, which
# a third worker fills (198 s with two workers, 167 s with three, on one machine).
# Repeat an order with PYTEST_FLAGS="-p randomly --randomly-seed=N -n 3"; one process in file
# order with PYTEST_FLAGS="-p no:randomly -n 0".
PYTEST_FLAGS ?= -p randomly -n 3 --dist worksteal

test: lint typecheck docs
	$(BIN)/pytest $(PYTEST_FLAGS)

demo: $(VENV)/.local-installed
	$(BIN)/siblings simulate --defer

# The wheel as a user gets it: built, installed with the [local] extra into a fresh virtualenv,
# and the demo run from a directory outside the checkout (nothing may come from the source tree).
# It is built from a copy of the files git would commit: a build/ left in the checkout could put
# stale modules into the wheel.
dist-check: | $(BIN)/python
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src"; \
	git ls-files -z --cached --others --exclude-standard \
	  | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$$tmp/src"; \
	$(BIN)/pip wheel -q --no-deps --wheel-dir "$$tmp/wheel" "$$tmp/src"; \
	wheel=$$(ls "$$tmp"/wheel/lambda_siblings-*.whl); \
	echo "dist-check: built $$(basename $$wheel)"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q "$$wheel[local]"; \
	mkdir "$$tmp/run"; cd "$$tmp/run"; \
	"$$tmp/venv/bin/siblings" simulate --chains 2 --records 40 --invocation-seconds 1.5 --shutdown-seconds 1 --json > "$$tmp/run.json"; \
	"$$tmp/venv/bin/python" -c 'import json, sys; s = json.load(open(sys.argv[1])); n = s["spawns"]["spawned"]; \
	  assert s["verification"]["ok"] and n >= 2, (n, s["verification"]["problems"]); \
	  print(f"dist-check: {n} siblings spawned, every record exactly once")' "$$tmp/run.json"; \
	echo "dist-check: passed"

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/aws_time.py
	$(BIN)/python benchmarks/estimator_latency.py
	$(BIN)/python benchmarks/spawn_path.py
	$(BIN)/python benchmarks/spawn_touch.py

bench-latency: $(VENV)/.local-installed
	$(BIN)/python benchmarks/estimator_latency.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
