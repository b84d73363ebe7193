"""DVC stage `train@<variant>`: train one variant; write its weights and its dvclive training log."""

import os
import sys

from mnist_dnn import data, models, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage


def main(variant):
    params = load_params()
    spec = params.model_spec(variant)
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    train = data.load_for_model("data/prepared/train.safetensors", device)
    val = data.load_for_model("data/prepared/val.safetensors", device)
    print(f"{variant}: {models.architecture(spec['hidden'])}, {len(train[0])} training images, on {device}")
    model, _ = training.train_logged(
        spec, params.train, params.optimizer, train, val, device, f"metrics/train/{variant}"
    )
    models.save_model(model, f"models/{variant}.safetensors", {**spec, "seed": params.train.seed})


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
