"""DVC stage `seed@<variant>-<seed>`: train one variant with one of `extra_seeds`, and test it (seed noise)."""

import os
import sys

from mnist_dnn import data, files, models, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import UserError, run_stage
from mnist_dnn.evaluation import evaluate


def main(variant, seed):
    params = load_params()
    spec = params.model_spec(variant)
    if not seed.isdigit() or int(seed) not in params.extra_seeds:
        raise UserError(f"seed {seed} is not in params.yaml extra_seeds {params.extra_seeds}")
    hp = params.train.model_copy(update={"seed": int(seed)})
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    train = data.load_for_model("data/prepared/train.safetensors", device)
    val = data.load_for_model("data/prepared/val.safetensors", device)
    test = data.load_for_model("data/prepared/test.safetensors", device)
    print(f"{variant} with seed {seed}: {models.architecture(spec['hidden'])}, on {device}")
    model, _ = training.train_variant(spec, hp, params.optimizer, train, val, device)
    metrics, _ = evaluate(model, *test)
    models.save_model(model, f"models/seeds/{variant}-{seed}.safetensors", {**spec, "seed": hp.seed})
    files.write_json(f"metrics/seeds/{variant}-{seed}.json", {"accuracy": metrics["accuracy"], "loss": metrics["loss"]})
    print(f"{variant} with seed {seed}: test accuracy {metrics['accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
