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

# Every benchmark in bench/, each run from the repo root; one that is not there (yet) is skipped.
BENCHMARKS ?= overhead history slack_latency discord_latency throughput

bench: $(STAMP_TEST)
	@set -e; for name in $(BENCHMARKS); do \
		if [ -f bench/$$name.py ]; then \
			echo "== bench/$$name.py"; \
			$(BIN)/python bench/$$name.py; \
		else \
			echo "== bench/$$name.py: not there, skipped"; \
		fi; \
	done

clean:
	rm -rf $(VENV) .durabot .pytest_cache
