# semtalk: every step of the pipeline is a target; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEMTALK := $(VENV)/bin/semtalk
STAMP := $(VENV)/.installed
# the embedded dataset (self-generated, BEAT2 format) and its feature cache
DATA ?= data/embedded
DATASET_ARGS ?=
CACHE ?= data/cache/embedded
EXTRACTORS ?= configs/data/tiny.yaml
DATA_CFG ?= configs/data/embedded.yaml
# SIZE=paper layers configs/paper/<stage>.yaml over the demo-size configs
SIZE ?= demo
# extra LightningCLI flags for every stage, e.g. TRAIN_ARGS="--trainer.precision bf16-mixed --trainer.devices 2"
TRAIN_ARGS ?=
CKPT := checkpoints
# SEED=k trains stages 2 and 3 (and the ablation) with seed k into checkpoints/seed<k>/ and writes the report to
# outputs/seed<k>/; stage 1 (the tokenizers) and the FGD encoder are shared by every seed. Unset: the configs'
# seed (2021) into checkpoints/.
SEED ?=
GEN := $(CKPT)$(if $(SEED),/seed$(SEED))
tag = $(1)$(if $(SEED),_seed$(SEED))
seed_args = $(if $(SEED),--seed_everything $(SEED))
PARTS := face upper hands lower
paper = $(if $(filter paper,$(SIZE)),-c configs/paper/$(1).yaml)
resume = $(if $(wildcard runs/$(1)/checkpoints/last.ckpt),--ckpt_path runs/$(1)/checkpoints/last.ckpt)
fit = $(SEMTALK) fit -c configs/trainer.yaml -c $(DATA_CFG) --trainer.logger.init_args.name $(1)

# nothing downloads at run time; numba keeps its compiled librosa kernels between runs
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export MPLBACKEND := Agg

.PHONY: help setup system-deps test lint format dataset cache pretrain-vq train-base train-sparse demo tensorboard bench-gpu \
	bench report ablation aggregate publish-report fgd clean distclean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_%-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

$(DATA)/.complete: | $(STAMP)
	$(SEMTALK) make-dataset $(DATA) $(DATASET_ARGS)

cache: setup $(CACHE)/manifest.json ## extract and cache the features (resumable; a no-op when current)

$(CACHE)/manifest.json: $(DATA)/.complete $(EXTRACTORS)
	$(SEMTALK) cache $(DATA) $(CACHE) --extractors $(EXTRACTORS)

# the longest trainings first, so that `make -j2 pretrain-vq` finishes sooner
STAGE1 := $(CKPT)/vq_upper.ckpt $(CKPT)/vq_lower.ckpt $(CKPT)/global_motion.ckpt $(CKPT)/vq_face.ckpt $(CKPT)/vq_hands.ckpt
pretrain-vq: cache $(STAGE1) ## stage 1: the four part RVQ-VAEs and the global-motion net

$(CKPT)/vq_%.ckpt: $(CACHE)/manifest.json configs/vq/default.yaml configs/vq/%.yaml
	$(call fit,vq_$*) -c configs/vq/default.yaml -c configs/vq/$*.yaml $(call paper,vq) --export $@ $(call resume,vq_$*) $(TRAIN_ARGS)

$(CKPT)/global_motion.ckpt: $(CACHE)/manifest.json configs/vq/global_motion.yaml
	$(call fit,global_motion) -c configs/vq/global_motion.yaml $(call paper,global_motion) --export $@ \
	  $(call resume,global_motion) $(TRAIN_ARGS)

train-base: pretrain-vq $(GEN)/base.ckpt ## stage 2: the base (rhythm) generator

$(GEN)/base.ckpt: $(foreach p,$(PARTS),$(CKPT)/vq_$(p).ckpt) $(CKPT)/global_motion.ckpt configs/base.yaml
	$(call fit,$(call tag,base)) -c configs/base.yaml $(call paper,base) --export $@ \
	  $(call resume,$(call tag,base)) $(seed_args) $(TRAIN_ARGS)

train-sparse: train-base $(GEN)/sparse.ckpt ## stage 3: the sparse (semantic) generator and Sem-gate

$(GEN)/sparse.ckpt: $(GEN)/base.ckpt configs/sparse.yaml
	$(call fit,$(call tag,sparse)) -c configs/sparse.yaml $(call paper,sparse) --model.init_args.base $< --export $@ \
	  $(call resume,$(call tag,sparse)) $(seed_args) $(TRAIN_ARGS)

# extra `semtalk train-fgd` flags, e.g. FGD_ARGS="--epochs 20 --device cuda"
FGD_ARGS ?=
fgd: dataset $(CKPT)/fgd.pt ## the FGD feature encoder, trained on the dataset's train split (for semtalk evaluate / test)

$(CKPT)/fgd.pt: $(DATA)/.complete
	$(SEMTALK) train-fgd $(DATA) --out $@ $(FGD_ARGS)

ABLATIONS := no_weighting wf_only wl_only
ablation: train-base $(foreach a,$(ABLATIONS),$(GEN)/ablation/sparse_$(a).ckpt) ## Sem-gate ablation: stage 3 without W_f and W_l, W_f only, W_l only (not in demo)

$(GEN)/ablation/sparse_%.ckpt: $(GEN)/base.ckpt configs/sparse.yaml configs/ablation/%.yaml
	$(call fit,$(call tag,ablation_$*)) -c configs/sparse.yaml $(call paper,sparse) -c configs/ablation/$*.yaml \
	  --model.init_args.base $< --export $@ $(call resume,$(call tag,ablation_$*)) $(seed_args) $(TRAIN_ARGS)

DEMO_JOBS ?= 2
demo: ## the main job: set-up, dataset, cache, the three stages, FGD encoder, generation, report (timed per step); SEED=k for another seed
	$(PYTHON) scripts/demo.py --jobs $(DEMO_JOBS) $(if $(SEED),--seed $(SEED))

# every output of a run goes under outputs/ (ignored by git); `make publish-report` copies it into docs/results/
REPORT ?= outputs/$(if $(SEED),seed$(SEED),demo)/demo.md
TIMING ?= runs/demo_timing$(if $(SEED),_seed$(SEED)).json
report: $(GEN)/sparse.ckpt $(CKPT)/fgd.pt ## the results report (outputs/demo/demo.md; SEED=k: outputs/seed<k>/): tables, claims and figures written by code
	$(PY) -m stages.report --data-config $(DATA_CFG) --checkpoints $(GEN) --out $(REPORT) --fgd-encoder $(CKPT)/fgd.pt \
	  $(if $(wildcard $(TIMING)),--timing $(TIMING))

# the reports to aggregate, e.g. RUNS="outputs/demo/demo/metrics.json outputs/seed1/demo/metrics.json"
RUNS ?= $(wildcard outputs/demo/demo/metrics.json outputs/seed*/demo/metrics.json)
AGGREGATE ?= outputs/seeds.md
aggregate: setup ## mean +- sd over several runs' metrics.json (default: the demo and every SEED=k run) -> outputs/seeds.md
	$(PY) -m stages.aggregate $(RUNS) --out $(AGGREGATE)

# the committed copy of the results: the report's markdown, figures and metrics.json (not the per-row motions)
PUBLISHED := docs/results
publish-report: ## copy the last report (outputs/demo/demo.md, its figures, metrics.json) and outputs/seeds.* to docs/results/
	@test -f outputs/demo/demo.md || { echo "no report in outputs/demo/: run make demo (or make report) first" >&2; exit 1; }
	mkdir -p $(PUBLISHED)/demo
	find $(PUBLISHED)/demo -maxdepth 1 -type f -delete
	cp outputs/demo/demo.md $(PUBLISHED)/demo.md
	find outputs/demo/demo -maxdepth 1 -type f \( -name '*.png' -o -name '*.json' \) -exec cp {} $(PUBLISHED)/demo/ \;
	$(if $(wildcard outputs/seeds.md),cp outputs/seeds.md outputs/seeds.json $(PUBLISHED)/)
	@echo "docs/results/ now holds the last report: review with git diff, then commit it"

tensorboard: setup ## open the training dashboards (losses, metrics, previews) at http://localhost:6006
	$(VENV)/bin/tensorboard --logdir runs

BENCH_ARGS ?= --size demo --device cpu
bench: setup ## benchmarks at demo size on the CPU: training steps, feature cache, generation (tables; JSON lines in outputs/bench.jsonl)
	$(PY) bench/train_step.py $(BENCH_ARGS) --out outputs/bench.jsonl
	$(PY) bench/cache.py $(BENCH_ARGS) --out outputs/bench.jsonl
	$(PY) bench/generation.py $(BENCH_ARGS) --out outputs/bench.jsonl

GPU_BENCH_ARGS ?= --size paper --device cuda
bench-gpu: setup ## the GPU tables of the README at paper size (CUDA): GPU tests, training steps (MFU), cache, generation
	$(PY) -m pytest -q -m gpu
	$(PY) bench/train_step.py $(GPU_BENCH_ARGS) --precision 32 bf16 --ops --out outputs/bench-gpu.jsonl
	$(PY) bench/cache.py $(GPU_BENCH_ARGS) --out outputs/bench-gpu.jsonl
	$(PY) bench/generation.py $(GPU_BENCH_ARGS) --precision 32 bf16 --seconds 144 --cuda-graphs --eager-too --ops \
	  --out outputs/bench-gpu.jsonl

clean: ## remove feature caches, runs and checkpoints (keeps .venv and the generated dataset)
	rm -rf runs checkpoints outputs lightning_logs data/cache .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean ## also remove .venv and the generated dataset
	rm -rf $(VENV) $(DATA) .cache
