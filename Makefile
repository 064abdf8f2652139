# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates or refreshes the virtual environment at .venv from the lock file: torch first
# (the CPU build pinned there), then every locked package, then this package without dependencies.
# `make lock` refreshes requirements.lock from pyproject.toml's ranges and constraints.txt.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
LOCK := requirements.lock
PIP_VERSION := 26.3
PIP_TOOLS := pip-tools==7.6.2
TORCH := $(shell grep -E '^torch==' $(LOCK))
DEMO_DIR ?= demo
# pytest-xdist workers of `make test`: two shorten the suite on a 2-core machine by about a fifth (more
# would each build the test zoos and compete for the same cores); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: venv lock demo test test-fast lint bench app shipped clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip==$(PIP_VERSION)"
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# The lock: every package of the dev environment at one version, resolved by pip-compile in a
# throwaway tool environment (build/lock-tools). Commit the result with the change that needed it.
# `make lock LOCK_UPGRADE=` adds what pyproject.toml gained and keeps every other pin.
LOCK_UPGRADE ?= --upgrade
lock:
	test -x build/lock-tools/bin/pip-compile || ( $(PYTHON) -m venv build/lock-tools && \
		build/lock-tools/bin/python -m pip install -q "$(PIP_TOOLS)" )
	CUSTOM_COMPILE_COMMAND="make lock" build/lock-tools/bin/pip-compile -q $(LOCK_UPGRADE) --extra dev \
		--constraint constraints.txt --strip-extras --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

demo: venv
	$(OFFLINE) $(VENV)/bin/harness demo --workdir $(DEMO_DIR)

test: venv
	$(OFFLINE) $(PY) -m pytest -n $(TEST_WORKERS)

test-fast: venv
	$(OFFLINE) $(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

lint: venv
	$(VENV)/bin/ruff check harness tests bench app
	$(VENV)/bin/ruff format --check harness tests bench app
	$(VENV)/bin/mypy harness

app: venv
	$(OFFLINE) $(VENV)/bin/harness app --store $(DEMO_DIR)/results.duckdb

bench: venv
	$(OFFLINE) $(PY) bench/run_all.py

# Maintainers: re-evaluate the whole zoo (full profile plus the demo's LM variants), built on this
# machine, and replace the shipped submissions of the harness-zoo org with the new files.
shipped: venv
	rm -rf build/shipped
	$(OFFLINE) $(VENV)/bin/harness zoo build --dir build/shipped/zoo --profile full
	$(OFFLINE) $(VENV)/bin/harness zoo build --dir build/shipped/zoo --family lm --profile demo
	rm -rf submissions/harness-zoo__*
	$(OFFLINE) $(VENV)/bin/harness demo --zoo build/shipped/zoo --out submissions --shipped "" \
		--store build/shipped/results.duckdb --cache-dir build/shipped/cache
	$(OFFLINE) $(VENV)/bin/harness validate submissions/

clean:
	rm -rf $(DEMO_DIR) build zoo results.duckdb results.duckdb.lock .harness_cache .pytest_cache .mypy_cache .ruff_cache
