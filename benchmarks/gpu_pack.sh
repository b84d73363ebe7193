#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch (Python 3.12) but reaches no registry:
# in .whl/, the wheels of pydantic, ruamel.yaml and psutil and of what they need, at constraints.txt's versions; in
# .mnist/, the four MNIST files. Both folders are ignored by git (about 14 MB together). Run it here, from the repository root:
#   benchmarks/gpu_pack.sh [folder with the four MNIST .gz files, default ../shared/mnist]
set -euo pipefail
mnist=${1:-../shared/mnist}
rm -rf .whl .mnist
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    $(grep -E '^(pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|ruamel\.yaml|psutil)==' \
        constraints.txt)
mkdir .mnist
cp "$mnist"/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz .mnist/
ls .whl .mnist
