"""DVC stage `optimizers@<name>`: train the optimizer study's variant with one optimizer; test it."""

import os
import sys
import time

from mnist_dnn import data, files, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage
from mnist_dnn.evaluation import evaluate


def main(name):
    params = load_params()
    study = params.optimizer_study
    opt = study.optimizer(name)
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    train = data.load_for_model("data/prepared/train.safetensors", device)
    val = data.load_for_model("data/prepared/val.safetensors", device)
    test = data.load_for_model("data/prepared/test.safetensors", device)
    print(f"{study.variant} with {name}: {opt.model_dump()}, on {device}")
    start = time.perf_counter()
    model, history = training.train_logged(
        params.model_spec(study.variant), params.train, opt, train, val, device, f"metrics/optimizers/{name}"
    )
    seconds = time.perf_counter() - start
    metrics, _ = evaluate(model, *test)
    result = {"test_accuracy": metrics["accuracy"], "train_loss": history[-1].train_loss, "seconds": seconds}
    files.write_json(f"metrics/optimizers/{name}.json", result)
    print(f"{name}: test accuracy {result['test_accuracy']:.4f} in {seconds:.0f} s")


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
