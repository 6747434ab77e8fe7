# Quick start: `make demo` (set up, then calibrate CHGNet on one DFT frame) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
export SOFTCALC_MODEL_DIR ?= $(SHARED)/models
export SOFTCALC_DATA_DIR ?= $(SHARED)/data
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD ?= 1

.PHONY: setup demo test test-all lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	touch $@

demo: setup
	$(VENV)/bin/softcalc demo --out demo_out

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q --runslow

lint: setup
	$(VENV)/bin/ruff check softcalc plugins tests benchmarks

clean:
	rm -rf $(VENV) demo_out build *.egg-info
