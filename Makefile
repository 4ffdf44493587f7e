PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_TEST := $(VENV)/.installed-test

.PHONY: dev test bench worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_DEV)

dev: $(STAMP_DEV)
	$(BIN)/durabot dev

worker: $(STAMP_DEV)
	$(BIN)/durabot worker

test: $(STAMP_TEST)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP_TEST)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .durabot .pytest_cache
