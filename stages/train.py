"""DVC stage `train@<variant>`: train one variant; write its weights and its dvclive training log."""

import os
import sys

from dvclive import Live

from mnist_dnn import data, models, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage
from mnist_dnn.files import atomic_path


def main(variant):
    params = load_params()
    spec = params.model_spec(variant)
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    train = data.load_for_model("data/prepared/train.safetensors", device)
    val = data.load_for_model("data/prepared/val.safetensors", device)
    print(f"{variant}: {models.architecture(spec['hidden'])}, {len(train[0])} training images, on {device}")

    with atomic_path(f"metrics/train/{variant}", is_dir=True) as log_dir:
        with Live(str(log_dir), dvcyaml=None, save_dvc_exp=False) as live:

            def log_epoch(log):
                live.step = log.epoch
                live.log_metric("train/loss", log.train_loss)
                live.log_metric("val/accuracy", log.val_accuracy)
                live.next_step()
                print(f"epoch {log.epoch:>3}: train loss {log.train_loss:.6f}, val accuracy {log.val_accuracy:.4f}")

            model = training.train_variant(
                spec, params.train, params.optimizer, train, val, device, on_epoch=log_epoch
            )
    models.save_model(model, f"models/{variant}.safetensors", spec)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
