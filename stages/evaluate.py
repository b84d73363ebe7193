"""DVC stage `evaluate@<variant>`: test metrics and the confusion-matrix data of one trained variant."""

import os
import sys

import pandas as pd

from mnist_dnn import data, files, models, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage
from mnist_dnn.evaluation import evaluate


def main(variant):
    load_params().variant(variant)
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    model, _ = models.load_model(f"models/{variant}.safetensors")
    inputs, targets = data.load_for_model("data/prepared/test.safetensors", device)
    metrics, predicted = evaluate(model.to(device), inputs, targets)
    confusion = pd.DataFrame({"actual": targets.cpu().numpy(), "predicted": predicted.cpu().numpy()})
    files.write_json(f"metrics/eval/{variant}.json", metrics)
    files.write_text(f"metrics/confusion/{variant}.csv", confusion.to_csv(index=False))
    print(f"{variant}: test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
