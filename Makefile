# semtalk: every step of the pipeline is a target; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEMTALK := $(VENV)/bin/semtalk
STAMP := $(VENV)/.installed
# the embedded dataset (self-generated, BEAT2 format)
DATA ?= data/embedded
DATASET_ARGS ?=

# nothing downloads at run time; numba keeps its compiled librosa kernels between runs
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLBACKEND := Agg

.PHONY: help setup system-deps test lint format dataset demo clean distclean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_%-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: system-deps $(STAMP) ## create .venv and install semtalk with its pinned stack (a no-op once done)

system-deps: ## install espeak-ng (speech synthesis for the embedded dataset) when missing
	@if ! ldconfig -p 2>/dev/null | grep -q libespeak-ng.so.1; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing espeak-ng"; \
	    (apt-get install -y -q --no-install-recommends espeak-ng >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends espeak-ng >/dev/null)); \
	  else \
	    echo "espeak-ng is missing: install it (Debian/Ubuntu: sudo apt-get install espeak-ng)" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision together, pinned, in their own call (see constraints.txt)
	$(PY) -m pip install -q -r constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

test: setup ## run the test suite (offline, CPU)
	$(PY) -m pytest

lint: setup ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff: fix what can be fixed and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

dataset: setup $(DATA)/.complete ## generate the embedded BEAT2-format dataset into $(DATA)

$(DATA)/.complete:
	$(SEMTALK) make-dataset $(DATA) $(DATASET_ARGS)

demo: dataset ## the main job: set up, generate the embedded dataset, (then train, test and generate)
	@$(SEMTALK) describe-dataset $(DATA)

clean: ## remove caches, runs and checkpoints (keeps .venv and the generated dataset)
	rm -rf runs checkpoints outputs lightning_logs data/cache .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean ## also remove .venv and the generated dataset
	rm -rf $(VENV) $(DATA) .cache
