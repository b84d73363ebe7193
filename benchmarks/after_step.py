"""Benchmark: what logging the loss after each step (every training.AFTER_STEP_EVERY-th batch) costs per epoch.

Each variant is trained twice from the same seed, epochs interleaved: as the pipeline does, and measuring the loss
after the step on the first batch of each epoch only (the baseline). ``python benchmarks/after_step.py`` after
``dvc repro prepare``.
"""

import argparse
import statistics
import time

from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import load_params


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/after_step.py", description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="data/prepared/train.safetensors", help="training split")
    parser.add_argument("--variants", nargs="+", default=["softmax", "nn_xavier", "dnn_dropout"])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per run (the first is dropped)")
    args = parser.parse_args(argv)
    params = load_params()
    train = data.load_for_model(args.train, "cpu")
    every = {"baseline": 10**9, "pipeline": training.AFTER_STEP_EVERY}
    print(f"loss after the step on every {training.AFTER_STEP_EVERY}th batch, against the first batch of an epoch only")
    for variant in args.variants:
        spec, hp = params.model_spec(variant), params.train.model_copy(update={"epochs": args.epochs})
        runs = {}
        for name in every:
            model, optimizer = training.setup(spec, hp, params.optimizer, "cpu")
            runs[name] = training.fit(model, optimizer, (train, None), hp, variant)
        seconds = {name: [] for name in runs}
        for _ in range(args.epochs):
            for name, run in runs.items():
                training.AFTER_STEP_EVERY = every[name]  # read by each step
                start = time.perf_counter()
                next(run)
                seconds[name].append(time.perf_counter() - start)
        base, logged = (statistics.median(seconds[name][1:]) for name in every)
        print(f"{variant:12} baseline {base:.2f} s/epoch, pipeline {logged:.2f} s/epoch: {logged / base:.2f}×")


if __name__ == "__main__":
    main()
