# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates or refreshes the virtual environment at .venv: torch first (CPU build,
# pinned in constraints.txt), then the package with its dev extra.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
TORCH := $(shell grep -E '^torch==' constraints.txt)

.PHONY: venv demo test test-fast lint bench app clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(OFFLINE) $(VENV)/bin/harness demo

test: venv
	$(OFFLINE) $(PY) -m pytest

test-fast: venv
	$(OFFLINE) $(PY) -m pytest -m "not slow"

lint: venv
	$(VENV)/bin/ruff check harness tests bench app
	$(VENV)/bin/ruff format --check harness tests bench app
	$(VENV)/bin/mypy harness

app: venv
	$(OFFLINE) $(VENV)/bin/harness app --store results.duckdb

bench: venv
	$(OFFLINE) $(PY) bench/run_all.py

clean:
	rm -rf zoo results.duckdb .harness_cache .pytest_cache .mypy_cache .ruff_cache
