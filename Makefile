# The two commands of the README: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Kaggle flowers set beside the project when present, else the public tf_flowers set.
DATA ?= $(if $(wildcard ../shared/data/flowers),../shared/data/flowers,tf_flowers)
RUN_ARGS ?=

.PHONY: run test test-fast test-slow notebook docs clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/petal run --data $(DATA) $(RUN_ARGS)

# Two workers, one a core, each test file on one of them (pytest-xdist); trained runs the
# tests share are made once for both (tests/conftest.py).
XDIST := -n 2 --dist loadfile

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(XDIST)

# The inner loop: everything but tests/integration/ (processes, the main job, the browser).
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(XDIST) -m "not slow and not integration"

test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m slow

# The documentation site, offline and strict (a broken link or reference fails it), into
# site/; the command-line reference is written from the parser first.
docs: $(VENV)/.installed-test
	$(BIN)/python -m petal.cli.reference > docs/cli.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# docs/flowers.ipynb run on the whole flowers set, its outputs saved into it.
notebook: $(VENV)/.installed-test
	$(BIN)/python benchmarks/notebook.py --write

clean-venv:
	rm -rf $(VENV)
