# `make repro` and `make test` work on a fresh clone with only Python 3.11: they create .venv and install first.
# Offline, point MNIST_MIRROR at a folder holding the four MNIST .gz files (e.g. MNIST_MIRROR=../shared/mnist).

PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --constraint constraints.txt --editable ".[test]"
	touch $@

repro: install
	dvc repro

test: install
	pytest

bench: install
	dvc repro prepare
	python -m mnist_dnn.bench
