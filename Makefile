# `make repro` and `make test` work on a fresh clone with only Python 3.11: they create .venv and install first.
# Offline, point MNIST_MIRROR at a folder holding the four MNIST .gz files (e.g. MNIST_MIRROR=../shared/mnist).

PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test bench bench-gpu seed-noise

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --constraint constraints.txt --editable ".[test,s3]"
	touch $@

repro: install
	dvc repro

test: install
	pytest

bench: install
	dvc repro prepare
	python benchmarks/bench.py

# The GPU check: eager vs CUDA-graph steps, the whole table (metrics/bench_gpu.json) and the GPU tests. It needs no
# DVC: on a bare GPU machine run `bash benchmarks/gpu_check.sh` itself (see its header).
bench-gpu: install
	dvc repro prepare
	bash benchmarks/gpu_check.sh

# The committed 5-seed table: every variant with train.seed and 4 more seeds, run as a temporary DVC experiment.
seed-noise: install
	-dvc exp remove seed-noise 2>/dev/null
	dvc exp run --temp --name seed-noise -S 'extra_seeds=[1,2,3,4]'
	ref=$$(git for-each-ref --format='%(refname)' refs/exps | grep '/seed-noise$$' | head -1) && \
	{ echo "<!-- written by \`make seed-noise\`: metrics/summary.md of the experiment extra_seeds=[1, 2, 3, 4] -->"; \
	  git show "$$ref:metrics/summary.md"; } > metrics/seed_noise.md && \
	git show "$$ref:metrics/summary.json" > metrics/seed_noise.json
