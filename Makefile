# tfaudio: `make demo` runs the main job end to end, `make test` runs every test.
# Two tested lanes, each in its own venv installed from its own constraints file when needed:
#   LANE=pinned (default)  .venv         constraints.txt         Python 3.11, TF 2.16, tensorflow-io, tflite-runtime
#   LANE=latest            .venv-latest  constraints-latest.txt  Python 3.12, TF 2.21, numpy 2, LiteRT
# e.g. `make test LANE=latest`. PYTHON=/path/to/python picks the interpreter a new venv is made with.
LANE ?= pinned
PYTEST_ARGS ?=
# Test files run in this many worker processes (pytest-xdist, one file per worker at a time); 0: in this
# process. The quick run: `make test PYTEST_ARGS='-m "not slow"'`.
TEST_WORKERS ?= 2

# The first of these that runs: python3.X on PATH (pyenv shims may list a version that is not active,
# so each is tried), then pyenv's own folders.
find_python = $(firstword $(foreach p,$(1),$(shell p=$$(command -v $(p) 2>/dev/null || echo $(p)); \
    $$p -c 'import sys' >/dev/null 2>&1 && echo $$p)))

ifeq ($(LANE),pinned)
VENV := .venv
CONSTRAINTS := constraints.txt
EXTRAS := test,io,tflite-runtime
PYTHON ?= $(call find_python,python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3)
else ifeq ($(LANE),latest)
VENV := .venv-latest
CONSTRAINTS := constraints-latest.txt
EXTRAS := test,tflite
PYTHON ?= $(call find_python,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
    python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3)
else
$(error LANE must be pinned or latest, not '$(LANE)')
endif

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(LANE)

.PHONY: install test demo lint benchmarks clean

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "lane $(LANE): $$($(PY) --version) in $(VENV), pins from $(CONSTRAINTS), extras [$(EXTRAS)]"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	@$(PY) -c 'import sys, tensorflow as tf, numpy as np; from tfaudio.interpreter import interpreter_backend as b; \
	    print(f"lane $(LANE): Python {sys.version.split()[0]}, TensorFlow {tf.__version__}, numpy {np.__version__}, TFLite interpreter {b()}")' 2>/dev/null
	TF_CPP_MIN_LOG_LEVEL=2 TFAUDIO_LANE=$(LANE) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/tfaudio esc50-demo --output saved_models

lint: $(STAMP)
	$(VENV)/bin/ruff check .

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do TF_CPP_MIN_LOG_LEVEL=2 $(PY) $$b || exit 1; done

clean:
	rm -rf .venv .venv-latest .pytest_cache .ruff_cache *.egg-info
