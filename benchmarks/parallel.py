"""Benchmark: `dvc repro --force` against `mnist-dnn repro --force --jobs N`, interleaved in one run on one temporary
copy of this workspace, for the main table with the optimizer study, and for the 20 seed stages of
`extra_seeds: [1, 2, 3, 4]`. Prints each wall time beside its `dvc repro` baseline and writes them with their ratio;
stops if the two runs leave other bytes in dvc.lock or metrics/.

``python benchmarks/parallel.py [--jobs 2] [--epochs E] [--rounds R] [--cases NAME...] --output
metrics/bench_parallel.json`` (or ``make bench-parallel``). Keep the machine quiet while it runs.
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnist_dnn.tools.parallel import set_params, snapshot, unpack

CASES = {  # name -> (params set, as for `dvc exp run -S`; targets)
    "table_and_optimizer_study": ([], []),
    "seeds_1_to_4": (["extra_seeds=[1, 2, 3, 4]"], ["seed@*"]),
}


def sh(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def workspace_copy(folder, epochs):
    """This workspace's files in ``folder``, committed in a new git repository, with ``epochs`` if given."""
    params = set_params(Path("params.yaml"), [f"train.epochs={epochs}"]) if epochs is not None else None
    unpack(snapshot(Path.cwd(), params), folder)
    sh(["git", "init", "-q"], folder)
    sh(["git", "add", "-A"], folder)
    sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "bench"], folder)


def timed(cmd, cwd):
    start = time.monotonic()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def outputs(folder):
    """SHA-256 of dvc.lock and of each file under metrics/, by path: what both commands must leave the same."""
    paths = [Path(folder, "dvc.lock"), *sorted(p for p in Path(folder, "metrics").rglob("*") if p.is_file())]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def cpu_name():
    """The CPU's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--epochs", type=int, help="train.epochs for the run (default: params.yaml's)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    results = {}
    Path(".dvc/tmp").mkdir(exist_ok=True)  # a fresh clone has none until DVC first runs
    with tempfile.TemporaryDirectory(prefix="bench-parallel.", dir=".dvc/tmp") as folder:
        workspace_copy(folder, args.epochs)
        sh(["dvc", "repro", "prepare"], folder)  # the data, on disk and in the page cache before the timed runs
        for case in args.cases:
            changes, targets = CASES[case]
            if changes:
                path = Path(folder, "params.yaml")
                path.write_bytes(set_params(path, changes))
            serial = ["dvc", "repro", "--force", *(["--glob"] if targets else []), *targets]
            parallel = [sys.executable, "-m", "mnist_dnn.cli", "repro", "--force", "--jobs", str(args.jobs), *targets]
            times, left = {"dvc_repro_s": [], "mnist_dnn_repro_s": []}, {}
            for round_ in range(args.rounds):  # interleaved, the order swapped each round
                runs = [("dvc_repro_s", serial), ("mnist_dnn_repro_s", parallel)]
                for name, cmd in runs if round_ % 2 == 0 else runs[::-1]:
                    times[name].append(round(timed(cmd, folder), 1))
                    left[name] = outputs(folder)
            serial_out, parallel_out = left["dvc_repro_s"], left["mnist_dnn_repro_s"]
            differ = sorted(path for path in serial_out.keys() | parallel_out.keys()
                            if serial_out.get(path) != parallel_out.get(path))
            if differ:
                sys.exit(f"{case}: dvc repro and mnist-dnn repro left other bytes in {', '.join(differ)}")
            best = {name: min(values) for name, values in times.items()}
            results[case] = {**times, "ratio": round(best["dvc_repro_s"] / best["mnist_dnn_repro_s"], 2),
                             "identical_files": len(serial_out)}
            print(f"{case}: dvc repro --force {best['dvc_repro_s']} s (the baseline), mnist-dnn repro --force "
                  f"--jobs {args.jobs} {best['mnist_dnn_repro_s']} s: {results[case]['ratio']}x")
    report = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)),
              "jobs": args.jobs, "epochs": args.epochs or "params.yaml", "rounds": args.rounds, "cases": results}
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
