"""Benchmark: the training engine against the lecture's own loop and the machine's GEMM rate; on CUDA, its eager
steps against its CUDA graphs.

``python benchmarks/bench.py`` (or ``make bench``) after ``dvc repro prepare``; ``--help`` lists the options. It needs
only torch, torchvision, safetensors, pydantic and ruamel.yaml, as on a GPU machine without the DVC stack.
"""

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from mnist_dnn.lecture import cuda_graphs, data, evaluation, training
from mnist_dnn.lecture.config import load_params
from mnist_dnn.stage import files
from mnist_dnn.stage.device import select_device


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


def compare_variant(params, name, data, device, epochs):
    """Seconds of each epoch of the lecture's loop (over ``mnist``) and of the engine (over ``train``, the same
    images as tensors), ``data = (train, mnist)``, both with params.yaml's optimizer; the engine's FLOPs per epoch
    (6 × parameters × images); and on the CPU ``time_in_parts`` of one more engine epoch."""
    train, mnist = data
    spec, hp = params.model_spec(name), params.train
    engine_model, engine_optimizer = training.setup(spec, hp, params.optimizer, device)
    lecture_model, lecture_optimizer = training.setup(spec, hp, params.optimizer, device)
    runs = {  # the lecture's loop validates nothing per epoch, so neither does the engine here
        "lecture": lecture_epochs(lecture_model, lecture_optimizer, mnist, hp.batch_size, device),
        "engine": training.fit(
            engine_model, engine_optimizer, (train, None), hp.model_copy(update={"epochs": epochs + 1}), name
        ),
    }
    seconds = seconds_per_epoch(runs, epochs)
    parts = time_in_parts(runs["engine"]) if device.type == "cpu" else {}  # CUDA runs asynchronously to the CPU
    return seconds, 6 * sum(p.numel() for p in engine_model.parameters()) * len(mnist), parts


def graph_vs_eager(params, name, train, device, epochs):
    """Microseconds per training step of the engine on CUDA, stepping eagerly and replaying CUDA graphs: the best of
    ``epochs`` epochs after the first (whose time, warm-up and capture included, is kept too)."""
    spec, hp = params.model_spec(name), params.train
    hp = hp.model_copy(update={"epochs": epochs + 1})
    runs = {}
    for mode, graph_steps in [("eager", 0), ("graph", cuda_graphs.GRAPH_STEPS)]:
        model, optimizer = training.setup(spec, hp, params.optimizer, device)
        runs[mode] = training.fit(model, optimizer, (train, None), hp, name, graph_steps=graph_steps)
    seconds = seconds_per_epoch(runs, epochs + 1)  # each epoch ends reading its loss: the GPU is done
    steps = math.ceil(len(train[0]) / hp.batch_size)
    eager, graph = (min(seconds[mode][1:]) / steps * 1e6 for mode in ("eager", "graph"))
    return {
        "variant": name,
        "eager_us_per_step": eager,
        "graph_us_per_step": graph,
        "speedup": eager / graph,
        "eager_first_epoch_s": seconds["eager"][0],
        "graph_first_epoch_s": seconds["graph"][0],
        "eager_epochs_s": seconds["eager"],
        "graph_epochs_s": seconds["graph"],
    }


def train_table(params, prepared_dir, device):
    """Wall seconds for the engine to train every variant for ``params.train.epochs``, as the pipeline does, and
    each trained model's test accuracy."""
    train, val, test = data.load_splits(
        *(Path(prepared_dir, f"{split}.safetensors") for split in ("train", "val", "test")), device=device
    )
    start = time.perf_counter()
    models = {
        name: training.train(params.model_spec(name), params.train, params.optimizer, (train, val))[0]
        for name in params.variants
    }
    seconds = time.perf_counter() - start
    return seconds, {name: evaluation.accuracy(model, *test) for name, model in models.items()}


def format_table(rows, columns):
    """``rows`` (dicts) as a plain-text table of ``columns``, right-aligned, numbers to 3 decimals."""
    cells = [columns]
    cells += [[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(" ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells)


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def compare_loops(params, names, data, device, epochs, gemm):
    """Rows of ``compare_variant`` for the variants ``names`` (``data = (train, mnist)``), printed as they come and as
    a table."""
    rows = []
    for name in names:
        seconds, flops_per_epoch, parts = compare_variant(params, name, data, device, epochs)
        # co-tenants only ever add time, so the best epoch is what each loop can do (as for the GEMM rate)
        lecture, engine = min(seconds["lecture"]), min(seconds["engine"])
        rows.append(
            {
                "variant": name,
                "lecture_s_per_epoch": lecture,
                "engine_s_per_epoch": engine,
                "speedup": lecture / engine,
                "engine_gflops": flops_per_epoch / engine / 1e9,
                "gemm_fraction": flops_per_epoch / engine / gemm,
                "lecture_epochs_s": seconds["lecture"],
                "engine_epochs_s": seconds["engine"],
            }
        )
        if parts:
            rows[-1] |= parts | {"matmul_gemm_fraction": flops_per_epoch / parts["matmul_s"] / gemm}
        print(f"{name}: lecture {lecture:.2f} s/epoch (median {statistics.median(seconds['lecture']):.2f}), "
              f"engine {engine:.2f} s/epoch (median {statistics.median(seconds['engine']):.2f})")
    print(format_table(rows, list(rows[0])[:6]))
    profile = [c for c in rows[0] if c not in ("lecture_epochs_s", "engine_epochs_s")][6:]
    if profile:
        print("where a profiled engine epoch's time goes (seconds), and the matrix products' own FLOP rate:")
        print(format_table(rows, ["variant", "engine_s_per_epoch", *profile]))
    return rows


def compare_graphs(params, names, train, device, epochs):
    """Rows of ``graph_vs_eager`` for the variants ``names``, printed as they come and as a table."""
    rows = []
    for name in names:
        rows.append(graph_vs_eager(params, name, train, device, epochs))
        print(f"{name}: eager {rows[-1]['eager_us_per_step']:.0f} µs/step, graphs {rows[-1]['graph_us_per_step']:.0f}"
              f" µs/step (first epoch, warm-up and capture included: {rows[-1]['graph_first_epoch_s']:.2f} s)")
    print(format_table(rows, list(rows[0])[:6]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--variants", nargs="+", help="variants to compare (default: all in params)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per loop and variant (the best is shown)")
    parser.add_argument("--raw", default="data/raw", help="MNIST as written by the download stage")
    parser.add_argument("--prepared", default="data/prepared", help="splits written by the prepare stage")
    parser.add_argument("--no-table", action="store_true", help="skip timing the whole default table")
    parser.add_argument("--output", help="where to write the results as JSON (default: metrics/bench.json, on CUDA "
                        "metrics/bench_gpu.json)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    device = select_device()
    cuda = device.type == "cuda"
    output = args.output or ("metrics/bench_gpu.json" if cuda else "metrics/bench.json")
    gemm = gemm_rate(device)
    processor = torch.cuda.get_device_name(device) if cuda else cpu_model()
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, {processor}")
    print(f"fp32 GEMM 2048x2048: {gemm / 1e9:.1f} GFLOP/s")
    results = {
        "device": str(device),
        "gpu" if cuda else "cpu": processor,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gemm_gflops": gemm / 1e9,
        "epochs_timed": args.epochs,
    }
    if cuda:
        results |= {"cuda": torch.version.cuda, "graph_steps": cuda_graphs.GRAPH_STEPS}
    images, labels = data.load_mnist(args.raw, train=True)
    train = data.to_inputs(images, device), data.to_targets(labels, device)
    names = args.variants or list(params.variants)
    if cuda:
        results["variants"] = compare_graphs(params, names, train, device, args.epochs)
    else:
        mnist = MNIST(args.raw, train=True, transform=transforms.ToTensor())
        results["variants"] = compare_loops(params, names, (train, mnist), device, args.epochs, gemm)
    if not args.no_table:
        results["table_epochs"] = params.train.epochs
        results["table_seconds"], results["table_test_accuracy"] = train_table(params, args.prepared, device)
        print(f"whole table ({len(params.variants)} variants x {params.train.epochs} epochs): "
              f"{results['table_seconds']:.1f} s; test accuracy "
              + ", ".join(f"{name} {acc:.4f}" for name, acc in results["table_test_accuracy"].items()))
    with files.atomic_outputs(output) as (path,):
        files.write_json(path, results)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
