"""DVC stage `train@<variant>`: train one variant; write its weights and its dvclive training log."""

import os
import sys

from dvclive import Live

from mnist_dnn import data, models, training
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage
from mnist_dnn.files import atomic_path
from mnist_dnn.optimizers import build_optimizer


def main(variant):
    params = load_params()
    hp = params.train
    spec = {"variant": variant, **params.variant(variant).model_dump(), "dropout_p": params.dropout_p(variant)}
    device = training.select_device(os.environ.get(training.DEVICE_ENV))
    train = data.load_for_model("data/prepared/train.safetensors", device)
    val = data.load_for_model("data/prepared/val.safetensors", device)

    training.seed_everything(hp.seed)
    model = models.build_model(spec["hidden"], spec["init"], spec["dropout_p"]).to(device)
    optimizer = build_optimizer(hp.optimizer, model.parameters(), hp.lr)
    print(f"{variant}: {models.architecture(spec['hidden'])}, {len(train[0])} training images, on {device}")
    epochs = training.fit(model, optimizer, train, val, hp.epochs, hp.batch_size, hp.seed, name=variant)
    with atomic_path(f"metrics/train/{variant}", is_dir=True) as log_dir:
        with Live(str(log_dir), dvcyaml=None, save_dvc_exp=False) as live:
            for log in epochs:
                live.step = log.epoch
                live.log_metric("train/loss", log.train_loss)
                live.log_metric("val/accuracy", log.val_accuracy)
                live.next_step()
                print(f"epoch {log.epoch:>3}: train loss {log.train_loss:.6f}, val accuracy {log.val_accuracy:.4f}")
    models.save_model(model, f"models/{variant}.safetensors", spec)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
