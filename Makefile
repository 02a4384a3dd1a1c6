# Two commands do all set-up: `make demo` and `make test` (each creates .venv when missing).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.contextrast-env
# Real data for integration tests and benchmarks: the shared data beside the checkout, if any.
export DETECTRON2_DATASETS ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),datasets)

.PHONY: env demo test test-all lint clean

env: $(STAMP)

$(STAMP): requirements.txt scripts/setup_env.sh scripts/install_detectron2.py projects/Contextrast/pyproject.toml
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/setup_env.sh
	touch $(STAMP)

# Train the demo model with and without Contextrast on the built-in data (CPU), print both mIoUs.
demo: $(STAMP)
	$(PY) tools/demo.py

# Default test suite (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q tests

# Default suite plus the slow group (multi-process, long end-to-end runs).
test-all: $(STAMP)
	$(PY) -m pytest -q tests --runslow

lint: $(STAMP)
	$(PY) -m black --check projects tools deploy bench tests scripts datasets
	$(PY) -m isort --check projects tools deploy bench tests scripts datasets
	$(PY) -m flake8 projects tools deploy bench tests scripts datasets

clean:
	rm -rf $(VENV) output
