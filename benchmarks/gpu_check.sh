#!/usr/bin/env bash
# The GPU check on a machine with a GPU and PyTorch but no DVC: installs the wheels carried in .whl/ (if any),
# prepares MNIST from the files carried in .mnist/ with the project's own download and prepare stages (no dvc), then
# runs the benchmark (bench_gpu.json) and the GPU tests (benchmarks/test_gpu.py). Results go to $OUT if set, else to
# metrics/. About 3 to 4 minutes are expected; it has not yet run on a GPU.
#
# From the repository root: benchmarks/gpu_pack.sh where the project is (it fills .whl/ and .mnist/), then this script
# on the GPU machine in a copy of the working tree with both folders; commit the bench_gpu.json it writes.
# Where the project is installed (make install) and data/prepared exists: make bench-gpu.
set -uo pipefail
results=${OUT:-metrics}
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 MNIST_DNN_DEVICE=cuda PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
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
