"""Training: seeding, device choice, and the mini-batch loop over tensors kept on the device."""

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from dvclive import Live

from mnist_dnn.errors import UserError
from mnist_dnn.evaluation import accuracy
from mnist_dnn.files import atomic_path
from mnist_dnn.models import build_model
from mnist_dnn.optimizers import build_optimizer

DEVICE_ENV = "MNIST_DNN_DEVICE"


def select_device(requested=None):
    """``requested`` when given (e.g. ``cpu``), else CUDA when PyTorch sees a GPU, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed):
    """Seed Python's and PyTorch's generators (CPU and every CUDA device) for a repeatable run."""
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_accuracy: float | None


def fit(model, optimizer, train, val, epochs, batch_size, shuffle_seed, name="model"):
    """Train ``model`` on ``train = (inputs, targets)``, yielding an EpochLog after each epoch.

    The data stays on its device; each epoch draws a seeded permutation (on the CPU, so the order is the
    same on every device) and slices shuffled mini-batches from it. ``val=None`` skips validation.
    Raises UserError if the loss diverges.
    """
    inputs, targets = train
    n = len(inputs)
    generator = torch.Generator().manual_seed(shuffle_seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(inputs.device)
        loss_sum = torch.zeros((), device=inputs.device)
        for batch in order.split(batch_size):
            loss = F.cross_entropy(model(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)
        train_loss = loss_sum.item() / n
        if not math.isfinite(train_loss):
            raise UserError(f"{name}: training diverged in epoch {epoch} (mean train loss {train_loss})")
        yield EpochLog(epoch, train_loss, accuracy(model, *val) if val else None)


def setup(spec, hp, opt, device):
    """Seed by ``hp`` (TrainParams), then build ``spec``'s model on ``device`` and the ``opt`` optimizer."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = hp.tf32
    seed_everything(hp.seed)
    model = build_model(spec["hidden"], spec["init"], spec["dropout_p"]).to(device)
    return model, build_optimizer(opt.name, model.parameters(), opt.lr, **opt.hyperparameters)


def train_variant(spec, hp, opt, train, val, device, on_epoch=None):
    """Train a fresh model of ``spec`` with ``hp`` and optimizer ``opt``; return it and its list of EpochLogs.

    ``on_epoch(EpochLog)``, when given, is called after each epoch.
    """
    model, optimizer = setup(spec, hp, opt, device)
    history = []
    for log in fit(model, optimizer, train, val, hp.epochs, hp.batch_size, hp.seed, spec["variant"]):
        history.append(log)
        if on_epoch:
            on_epoch(log)
    return model, history


def train_logged(spec, hp, opt, train, val, device, log_dir):
    """``train_variant``, logging train loss and validation accuracy per epoch with dvclive into ``log_dir``.

    The log appears in ``log_dir`` whole, once training has succeeded.
    """
    with atomic_path(log_dir, is_dir=True) as tmp, Live(str(tmp), dvcyaml=None, save_dvc_exp=False) as live:

        def log_epoch(log):
            live.step = log.epoch
            live.log_metric("train/loss", log.train_loss)
            live.log_metric("val/accuracy", log.val_accuracy)
            live.next_step()
            print(f"epoch {log.epoch:>3}: train loss {log.train_loss:.6f}, val accuracy {log.val_accuracy:.4f}")

        return train_variant(spec, hp, opt, train, val, device, on_epoch=log_epoch)
