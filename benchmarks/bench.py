"""Benchmark: the training engine against the lecture's own loop, and against the machine's GEMM rate.

``python benchmarks/bench.py`` (or ``make bench``) after ``dvc repro prepare``; ``--help`` lists the options.
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from mnist_dnn import data, files, training
from mnist_dnn.config import load_params
from mnist_dnn.device import select_device


def gemm_rate(device, n=2048, repeats=10):
    """Best fp32 FLOP/s of an ``n``×``n`` matrix product on ``device`` over ``repeats`` timed runs."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    seconds = []
    for _ in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        (a @ b).sum().item()
        seconds.append(time.perf_counter() - start)
    return 2 * n**3 / min(seconds[1:])


def lecture_epochs(model, optimizer, dataset, batch_size, device):
    """The lecture's training loop, re-typed (DataLoader over ToTensor images); yields its cost per epoch."""
    data_loader = DataLoader(dataset=dataset, batch_size=batch_size, shuffle=True)
    criterion = torch.nn.CrossEntropyLoss()
    while True:
        avg_cost = 0
        total_batch = len(dataset) // batch_size
        for batch_xs, batch_ys in data_loader:
            X = batch_xs.view(-1, 28 * 28).to(device)
            Y = batch_ys.to(device)
            optimizer.zero_grad()
            hypothesis = model(X)
            cost = criterion(hypothesis, Y)
            cost.backward()
            optimizer.step()
            avg_cost += cost / total_batch
        yield avg_cost.item()


def seconds_per_epoch(runs, epochs):
    """Seconds of each epoch of each generator in ``runs``, their epochs interleaved to share the noise."""
    seconds = {name: [] for name in runs}
    for _ in range(epochs):
        for name, run in runs.items():
            start = time.perf_counter()
            next(run)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def time_in_parts(run):
    """Profile one more epoch of ``run`` on the CPU: its seconds, and those spent in matrix products, in the
    optimizer's step and in drawing random numbers (dropout masks); the rest is element-wise work and overhead."""
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        next(run)
    epoch = time.perf_counter() - start
    events = profile.key_averages()
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm"))
    step = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#"))
    rng = sum(e.self_cpu_time_total for e in events if e.key in ("aten::uniform_", "aten::bernoulli_"))
    return {"profiled_epoch_s": epoch, "matmul_s": matmul / 1e6, "optimizer_s": step / 1e6, "random_s": rng / 1e6}


def compare_variant(params, name, train, mnist, device, epochs):
    """Seconds of each epoch of the lecture's loop (over ``mnist``) and of the engine (over ``train``, the same
    images as tensors), both with params.yaml's optimizer; the engine's FLOPs per epoch (6 × parameters × images);
    and on the CPU ``time_in_parts`` of one more engine epoch."""
    spec, hp = params.model_spec(name), params.train
    engine_model, engine_optimizer = training.setup(spec, hp, params.optimizer, device)
    lecture_model, lecture_optimizer = training.setup(spec, hp, params.optimizer, device)
    runs = {  # the lecture's loop validates nothing per epoch, so neither does the engine here
        "lecture": lecture_epochs(lecture_model, lecture_optimizer, mnist, hp.batch_size, device),
        "engine": training.fit(
            engine_model, engine_optimizer, train, None, hp.model_copy(update={"epochs": epochs + 1}), name
        ),
    }
    seconds = seconds_per_epoch(runs, epochs)
    parts = time_in_parts(runs["engine"]) if device.type == "cpu" else {}  # CUDA runs asynchronously to the CPU
    return seconds, 6 * sum(p.numel() for p in engine_model.parameters()) * len(mnist), parts


def table_seconds(params, prepared_dir, device):
    """Wall seconds for the engine to train every variant for ``params.train.epochs``, as the pipeline does."""
    train, val = data.load_splits(
        Path(prepared_dir, "train.safetensors"), Path(prepared_dir, "val.safetensors"), device=device
    )
    start = time.perf_counter()
    for name in params.variants:
        training.train(params.model_spec(name), params.train, params.optimizer, train, val)
    return time.perf_counter() - start


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--variants", nargs="+", help="variants to compare (default: all in params)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per loop and variant (the best is shown)")
    parser.add_argument("--raw", default="data/raw", help="MNIST as written by the download stage")
    parser.add_argument("--prepared", default="data/prepared", help="splits written by the prepare stage")
    parser.add_argument("--no-table", action="store_true", help="skip timing the whole default table")
    parser.add_argument("--output", default="metrics/bench.json", help="where to write the results as JSON")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    device = select_device()
    gemm = gemm_rate(device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, {cpu_model()}")
    print(f"fp32 GEMM 2048x2048: {gemm / 1e9:.1f} GFLOP/s")
    images, labels = data.load_mnist(args.raw, train=True)
    train = data.to_inputs(images, device), data.to_targets(labels, device)
    mnist = MNIST(args.raw, train=True, transform=transforms.ToTensor())
    rows = []
    for name in args.variants or params.variants:
        epochs, flops_per_epoch, parts = compare_variant(params, name, train, mnist, device, args.epochs)
        # co-tenants only ever add time, so the best epoch is what each loop can do (as for the GEMM rate)
        lecture, engine = min(epochs["lecture"]), min(epochs["engine"])
        rows.append(
            {
                "variant": name,
                "lecture_s_per_epoch": lecture,
                "engine_s_per_epoch": engine,
                "speedup": lecture / engine,
                "engine_gflops": flops_per_epoch / engine / 1e9,
                "gemm_fraction": flops_per_epoch / engine / gemm,
                "lecture_epochs_s": epochs["lecture"],
                "engine_epochs_s": epochs["engine"],
            }
        )
        if parts:
            rows[-1] |= parts | {"matmul_gemm_fraction": flops_per_epoch / parts["matmul_s"] / gemm}
        print(f"{name}: lecture {lecture:.2f} s/epoch (median {statistics.median(epochs['lecture']):.2f}), "
              f"engine {engine:.2f} s/epoch (median {statistics.median(epochs['engine']):.2f})")
    table = pd.DataFrame(rows).drop(columns=["lecture_epochs_s", "engine_epochs_s"])
    print(table.iloc[:, :6].to_string(index=False, float_format="%.3f"))
    if len(table.columns) > 6:
        print("where a profiled engine epoch's time goes (seconds), and the matrix products' own FLOP rate:")
        print(table.iloc[:, [0, 2, *range(6, len(table.columns))]].to_string(index=False, float_format="%.3f"))
    results = {
        "device": str(device),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gemm_gflops": gemm / 1e9,
        "epochs_timed": args.epochs,
        "variants": rows,
    }
    if not args.no_table:
        results["table_epochs"] = params.train.epochs
        results["table_seconds"] = table_seconds(params, args.prepared, device)
        print(f"whole table ({len(params.variants)} variants x {params.train.epochs} epochs): "
              f"{results['table_seconds']:.1f} s")
    with files.atomic_outputs(args.output) as (output,):
        files.write_json(output, results)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
