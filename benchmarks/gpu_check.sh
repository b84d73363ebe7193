#!/usr/bin/env bash
# The GPU check (issue 14) on a machine with a GPU and PyTorch but no DVC: installs the wheels carried in .whl/ (if
# any), prepares MNIST from the files carried in .mnist/ with the project's own download and prepare stages (no dvc),
# then runs the benchmark (bench_gpu.json) and the GPU tests (benchmarks/test_gpu.py). Results go to $OUT if set, else
# to metrics/. About 3 to 4 minutes of its 6-minute budget are expected; it has not yet run on a GPU.
#
# On a bare GPU machine: run benchmarks/gpu_pack.sh here, copy the checkout with .whl/ and .mnist/ there, run
# `bash benchmarks/gpu_check.sh` there, and commit the bench_gpu.json it writes with the figures it holds.
# Where the project is installed (make install) and data/prepared exists: make bench-gpu.
set -uo pipefail
results=${OUT:-metrics}
python=${PYTHON:-python3}
# CUDA graphs are opt-in until this check has passed on a GPU: it turns them on for its own runs.
export PYTHONUNBUFFERED=1 MNIST_DNN_DEVICE=cuda MNIST_DNN_CUDA_GRAPHS=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$results"

if [ -d .whl ]; then
    $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site \
        .whl/*.whl || exit
    export PYTHONPATH=$PYTHONPATH:/tmp/gpu-check-site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())" \
    || exit

if [ ! -f data/prepared/test.safetensors ]; then
    MNIST_MIRROR=${MNIST_MIRROR:-.mnist} $python stages/download.py data/raw || exit
    $python stages/prepare.py data/raw data/prepared/{train,val,test}.safetensors || exit
fi
echo "ready after ${SECONDS} s"

status=0
$python benchmarks/bench.py --epochs 3 --output "$results/bench_gpu.json" 2>&1 | tee "$results/bench_gpu.log" \
    || status=1
echo "bench done after ${SECONDS} s"
$python -m pytest benchmarks/test_gpu.py -v -s -p no:cacheprovider --junitxml "$results/test_gpu.xml" 2>&1 \
    | tee "$results/test_gpu.log" || status=1
echo "GPU check done after ${SECONDS} s, status $status"
exit $status
