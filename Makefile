# Two commands for a fresh machine (see README.md):
#   make book   execute every chapter (PROFILE=book by default) and build the HTML book into _build/html
#   make test   unit tests, smoke run of every chapter, regression check, strict book build
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= book
BIN := $(VENV)/bin
# Generated data and trained models are cached here (never committed).
export SALBOOK_CACHE ?= $(CURDIR)/.cache/salbook
export PYTHONHASHSEED ?= 0

.PHONY: install book test unit smoke regress build-strict lab clean

# The environment is (re)installed only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

book: install
	$(BIN)/salbook run --profile $(PROFILE)
	$(BIN)/salbook build --profile $(PROFILE)

test: unit smoke regress build-strict

unit: install
	$(BIN)/python -m pytest

smoke: install
	$(BIN)/salbook run --profile smoke

regress: install
	$(BIN)/salbook regress --profile smoke

build-strict: install
	$(BIN)/salbook build --profile smoke --strict

lab: install
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf _build
