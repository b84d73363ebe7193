"""Benchmark: which CPU numerics settings give the same float bits everywhere, and what each costs per epoch.

Each candidate is a set of environment variables (ATen's CPU capability, MKL's CNR branch, MKL's dynamic threads,
oneDNN's ISA, the thread count), set before torch is imported, in a fresh process per run; K_SLICE_ENV also makes the
linear layers compute their three products with the inner dimension cut into slices (the cross-vendor experiment of
docs/reproducibility.md). For each one it prints

- its cost: seconds per epoch of training, against the machine's native numerics (no variable set), interleaved
  in rounds so that both share the machine's noise;
- its stability: the hash of the weights after one short epoch under 1, 2, 4 and 16 threads and under every ATen
  capability the candidate does not pin; stable means one hash for all of them.

``python benchmarks/numerics.py`` (or ``make bench-numerics``) after ``dvc repro prepare``. It trains with the
engine only (no DVC), from params.yaml, and ignores the project's own numerics default (``MNIST_DNN_NUMERICS=native``).
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

K_SLICE_ENV = "K_SLICE"  # slice size of the linear layers' inner dimension; unset: plain nn.Linear
# candidate → the variables it sets; "native" sets none.
CANDIDATES = {
    "native": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "cbwr_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "cbwr_avx2": {"MKL_CBWR": "AVX2"},
    "cbwr_avx2_strict": {"MKL_CBWR": "AVX2,STRICT"},
    "mkl_dynamic_false": {"MKL_DYNAMIC": "FALSE"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads_1": {"OMP_NUM_THREADS": "1"},
    "aten_avx2+threads_1": {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"},
    "aten_avx2+mkl_dynamic_false": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_DYNAMIC": "FALSE"},
    "aten_avx2+cbwr_compatible": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"},
    "aten_avx2+cbwr_avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},
    "aten_avx2+cbwr_avx2_strict": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"},
    "aten_avx2+cbwr_avx2+onednn_avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                                        "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "aten_avx2+cbwr_compatible+k_slice_100": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE",
                                              K_SLICE_ENV: "100"},
}
CAPABILITIES = ["default", "avx2", "avx512"]
THREADS = [1, 2, 4, 16]
PROBE_IMAGES = 10_000  # the stability probe's short epoch: 100 steps of 100 images


def sliced_matmul(a, b, size):
    """``a @ b`` with the inner dimension cut into slices of ``size`` whose products are added left to right; both
    operands row-major and contiguous but for ``a``'s column slices, as ../shared/numerics/gemm_probe.py computes
    them."""
    out = a[:, :size] @ b[:size]
    for start in range(size, a.shape[1], size):
        out = out + a[:, start : start + size] @ b[start : start + size]
    return out


def sliced_linear(size):
    """``F.linear`` whose forward, input-gradient and weight-gradient products are ``sliced_matmul`` of ``size``."""
    import torch

    class SlicedLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias):
            ctx.save_for_backward(x, weight)
            return sliced_matmul(x, weight.t().contiguous(), size) + bias

        @staticmethod
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            grad_x = sliced_matmul(grad, weight, size) if ctx.needs_input_grad[0] else None
            return grad_x, sliced_matmul(grad.t().contiguous(), x, size), grad.sum(0)

    return SlicedLinear.apply


def worker(variant, epochs, images, train_path):
    """Train ``variant`` for ``epochs`` on the first ``images`` training images; print JSON of the numerics in
    force, each epoch's seconds and the SHA-256 of the weights."""
    import torch

    from mnist_dnn.lecture import data, training
    from mnist_dnn.lecture.config import load_params

    if os.environ.get(K_SLICE_ENV):
        linear = sliced_linear(int(os.environ[K_SLICE_ENV]))
        torch.nn.Linear.forward = lambda self, x: linear(x, self.weight, self.bias)
    params = load_params()
    inputs, targets = data.load_for_model(train_path, "cpu")
    hp = params.train.model_copy(update={"epochs": epochs})
    model, optimizer = training.setup(params.model_spec(variant), hp, params.optimizer, "cpu")
    seconds, start = [], time.perf_counter()
    for _ in training.fit(model, optimizer, ((inputs[:images], targets[:images]), None), hp, variant):
        seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.numpy().tobytes())
    capability = torch.backends.cpu.get_cpu_capability()
    print(json.dumps({"capability": capability, "threads": torch.get_num_threads(), "seconds": seconds,
                      "sha256": digest.hexdigest()}))


def run(env, variant, epochs, images, train_path):
    """One worker run under ``env`` added to this process's environment (the project's numerics default off)."""
    command = [sys.executable, __file__, "--worker", variant, str(epochs), str(images), "--train", train_path]
    full = os.environ | {"MNIST_DNN_NUMERICS": "native"} | env
    variables = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_DYNAMIC", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", K_SLICE_ENV)
    for name in variables:
        if name not in env:
            full.pop(name, None)
    out = subprocess.run(command, env=full, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def stability(env, variants, train_path):
    """The distinct weight hashes of a short epoch of each of ``variants`` under every thread count and every
    unpinned ATen capability; stops at the first run that differs from the first."""
    capabilities = [None] if "ATEN_CPU_CAPABILITY" in env else CAPABILITIES
    threads = [None] if "OMP_NUM_THREADS" in env else THREADS
    first, runs = {}, 0
    for capability in capabilities:
        for n in threads:
            settings = env | ({"ATEN_CPU_CAPABILITY": capability} if capability else {})
            settings |= {"OMP_NUM_THREADS": str(n)} if n else {}
            for variant in variants:
                result = run(settings, variant, 1, PROBE_IMAGES, train_path)
                runs += 1
                first.setdefault(variant, (result["sha256"], settings))
                if result["sha256"] != first[variant][0]:
                    where = ", ".join(f"{k}={v}" for k, v in settings.items() if k not in env)
                    return {"stable": False, "runs": runs, "breaks_at": f"{variant} with {where or 'the same'}"}
    return {"stable": True, "runs": runs, "hashes": {v: h[:12] for v, (h, _) in first.items()}}


def cost(names, variants, epochs, rounds, train_path):
    """Median seconds per epoch of each candidate in ``names`` and variant, over ``rounds`` interleaved rounds."""
    seconds = {name: {variant: [] for variant in variants} for name in names}
    for _ in range(rounds):
        for name in names:
            for variant in variants:
                result = run(CANDIDATES[name], variant, epochs, 60_000, train_path)
                seconds[name][variant] += result["seconds"]
    return {name: {v: statistics.median(s) for v, s in by_variant.items()} for name, by_variant in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/numerics.py", description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="data/prepared/train.safetensors", help="training split")
    parser.add_argument("--variants", nargs="+", default=["nn_xavier", "dnn_dropout"], help="variants to train")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    parser.add_argument("--output", help="also write the results as JSON here")
    parser.add_argument("--worker", nargs=3, metavar=("VARIANT", "EPOCHS", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        variant, epochs, images = args.worker
        return worker(variant, int(epochs), int(images), args.train)

    names = ["native", *(name for name in args.candidates if name != "native")]
    seconds = cost(names, args.variants, args.epochs, args.rounds, args.train)
    rows = []
    for name in names:
        row = {"candidate": name, "env": CANDIDATES[name]}
        for variant in args.variants:
            row[f"{variant}_s_per_epoch"] = seconds[name][variant]
            row[f"{variant}_vs_native"] = seconds[name][variant] / seconds["native"][variant]
        row |= stability(CANDIDATES[name], args.variants, args.train)
        rows.append(row)
        cells = "  ".join(f"{v} {row[f'{v}_s_per_epoch']:.2f} s ({row[f'{v}_vs_native']:.2f}×)" for v in args.variants)
        verdict = "stable" if row["stable"] else f"unstable: {row['breaks_at']}"
        print(f"{name:32} {cells}  {verdict} ({row['runs']} runs)", flush=True)
    if args.output:
        from mnist_dnn.stage import files, numerics

        with files.atomic_outputs(args.output) as (path,):
            files.write_json(path, {"machine": numerics.fingerprint(), "epochs": args.epochs, "rounds": args.rounds,
                                    "probe_images": PROBE_IMAGES, "threads": THREADS, "candidates": rows})
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
