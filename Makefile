# `make repro` and `make test` work on a fresh clone with only Python 3.11: they create .venv and install first.
# Offline, point MNIST_MIRROR at a folder holding the four MNIST .gz files (e.g. MNIST_MIRROR=../shared/mnist).

PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Relative, so that each stage imports the mnist_dnn of the copy it runs in: a DVC experiment runs in a copy of the
# repository, and the editable install would otherwise give it the workspace's code.
export PYTHONPATH := src$(if $(PYTHONPATH),:$(PYTHONPATH))
export DVC_NO_ANALYTICS := 1
# Absolute, because stages also run in copies elsewhere (mnist-dnn repro's tasks, DVC experiments).
ifdef MNIST_MIRROR
override MNIST_MIRROR := $(abspath $(MNIST_MIRROR))
export MNIST_MIRROR
endif
.DEFAULT_GOAL := help

.PHONY: help install repro verify lint check deps test docs browser bench bench-numerics bench-vendors bench-gpu bench-parallel seed-noise sweep results

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 18

install: $(VENV)/.installed  ## create .venv and install the package with its test, S3 and Ray extras (pinned)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --constraint constraints.txt --editable ".[test,s3,ray]"
	touch $@

# dvc repro's stages, the independent ones at once as Ray tasks, one per core: 1.39x faster than `dvc repro` on 2
# cores, with the same dvc.lock and metrics/ (docs/performance.md). `dvc repro` itself still runs them one by one.
repro: install  ## run the whole pipeline (mnist-dnn repro: dvc repro's stages, the independent ones at once)
	mnist-dnn repro

# Rerun the pipeline and prove it gives the committed results: byte for byte with the committed run's numerics, within
# seed noise with others; and one variant trained twice gives the same bytes (src/mnist_dnn/tools/verify.py).
verify: install  ## rerun the pipeline and prove it gives the committed results
	python -m mnist_dnn.tools.verify

# Tests run on every core (pytest-xdist; more workers than cores measured slower: the stages keep the cores busy). Each
# module that shares one pipeline run, and the tests on one Ray cluster, stay on one worker (xdist_group); the order
# the workers take them in is tests/conftest.py's, not xdist's (--no-loadscope-reorder).
PYTEST := pytest -n auto --dist loadgroup --no-loadscope-reorder

lint: install  ## ruff at the project's 120 columns (rules in pyproject.toml)
	ruff check .

# The markers that `check` leaves out are registered in pyproject.toml.
check: install lint  ## the edit-test loop: every test but the pipeline, remotes, browser and slow ones (under 2 minutes)
	$(PYTEST) -m "not e2e and not remote and not browser and not slow"

# After adding an import to a module a stage runs: tests/test_dvc_yaml.py fails until dvc.yaml lists it. Running it
# twice changes nothing.
deps: install  ## rewrite each dvc.yaml stage's code deps from the modules it imports
	python -m mnist_dnn.tools.stage_deps

# The slowest 30 tests close the report, so that a CI log shows where its minutes went.
test: install lint browser  ## the full test suite, as CI runs it
	$(PYTEST) --durations=30

# After a run: copy the result tables (metrics/*.md) into README.md and docs/ again (tests/test_docs.py checks them).
docs: install  ## copy the result tables into README.md and docs/ again
	python -m mnist_dnn.results.doc_tables

# tests/test_report.py drives Debian's headless Chromium; install it when missing (as root, on Debian or Ubuntu).
browser:  ## install headless Chromium for the report tests when missing
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }

bench: install  ## the developer's benchmark: training speed and memory against native
	dvc repro prepare
	python benchmarks/bench.py

# CPU numerics: each candidate setting's cost per epoch against native, and whether it gives one set of bits under
# every thread count and ATen capability (metrics/bench_numerics.json).
bench-numerics: install  ## the CPU numerics settings: cost per epoch and bit stability
	dvc repro prepare
	python benchmarks/numerics.py --output metrics/bench_numerics.json

# Across CPU vendors: the training shapes' matrix products here, shape by shape, against another machine's reference
# hashes in ../shared/numerics/ (metrics/bench_vendors.json).
bench-vendors: install  ## this CPU's matrix products against another vendor's reference hashes
	python benchmarks/gemm_vendors.py --output metrics/bench_vendors.json

# `dvc repro --force` against `mnist-dnn repro --force --jobs 2` (Ray), interleaved: the table with the optimizer study,
# and the 20 seed stages of extra_seeds [1, 2, 3, 4] (metrics/bench_parallel.json; EPOCHS=E to train fewer epochs).
bench-parallel: install  ## dvc repro against mnist-dnn repro --jobs 2 (Ray); EPOCHS=E trains fewer epochs
	python benchmarks/parallel.py --jobs 2 $(if $(EPOCHS),--epochs $(EPOCHS)) --output metrics/bench_parallel.json

# The GPU check: eager vs CUDA-graph steps, the whole table (metrics/bench_gpu.json) and the GPU tests. It needs no
# DVC: on a bare GPU machine run `bash benchmarks/gpu_check.sh` itself (see its header).
bench-gpu: install  ## the GPU check: eager vs CUDA-graph steps and the whole table
	dvc repro prepare
	bash benchmarks/gpu_check.sh

# The committed 5-seed table: every variant with train.seed and 4 more seeds, run as a temporary DVC experiment. The
# pipeline (make repro) and then the 20 seed stages run first through mnist-dnn repro, the independent ones at once,
# so that the experiment restores them all from the run-cache and runs only summarize and report.
seed-noise: repro  ## the committed 5-seed table, as a temporary DVC experiment
	-dvc exp remove seed-noise 2>/dev/null
	mnist-dnn repro -S 'extra_seeds=[1,2,3,4]' 'seed@*'
	dvc exp run --temp --name seed-noise -S 'extra_seeds=[1,2,3,4]'
	ref=$$(git for-each-ref --format='%(refname)' refs/exps | grep '/seed-noise$$' | head -1) && \
	{ echo "<!-- written by \`make seed-noise\`: metrics/summary.md of the experiment extra_seeds=[1, 2, 3, 4] -->"; \
	  git show "$$ref:metrics/summary.md"; } > metrics/seed_noise.md && \
	git show "$$ref:metrics/summary.json" > metrics/seed_noise.json && \
	git show "$$ref:metrics/numerics.json" > metrics/seed_noise_numerics.json

# Every committed result, remade on this machine in one go: the pipeline (forced: nothing restored from another
# machine's run), the seed-noise table, the sweep, the report again with both, the tables copied into README.md and
# docs/, and the README's picture; then the check that they all agree (python -m mnist_dnn.tools.agreement). It commits
# nothing: `git status` shows what changed. On another CPU vendor every trained figure changes, all at once.
results: install browser  ## remake every committed result on this machine, all at once (commits nothing)
	@start=$$(date +%s) && set -e && \
	mnist-dnn repro --force && \
	$(MAKE) --no-print-directory seed-noise sweep && \
	dvc repro && \
	$(MAKE) --no-print-directory docs && \
	python -m mnist_dnn.results.report_picture && \
	python -m mnist_dnn.tools.agreement && \
	echo "make results: done in $$(( $$(date +%s) - start )) s; see git status"

# Does dropout help? dnn_dropout with keep_prob 0.3, 0.4, …, 1.0 and three seeds (train.seed, 1, 2), one queued DVC
# experiment per keep_prob that runs only dnn_dropout's stages; two at a time, one thread each. Writes the committed
# metrics/sweeps/keep_prob.{json,md,svg} and the numerics that computed them (keep_prob_numerics.json).
sweep: install  ## the keep_prob sweep on DVC's queue, and its table and plot
	dvc repro prepare
	python -m mnist_dnn.tools.sweep --values 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0 --seeds 1 2 --jobs 2 \
	  --output metrics/sweeps/keep_prob
