"""Training: seeding, and the mini-batch loop over tensors kept on the device."""

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnist_dnn.errors import UserError
from mnist_dnn.evaluation import accuracy
from mnist_dnn.optimizers import build_optimizer


def seed_everything(seed):
    """Seed Python's and PyTorch's generators (CPU and every CUDA device) for a repeatable run."""
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_accuracy: float | None


def fit(model, optimizer, train, val, hp, name="model"):
    """Train ``model`` on ``train = (inputs, targets)`` for ``hp.epochs``, yielding an EpochLog after each epoch.

    The data stays on its device; each epoch draws a permutation seeded by ``hp.seed`` (on the CPU, so the order is
    the same on every device) and slices ``hp.batch_size`` mini-batches from it. ``val=None`` skips validation.
    Raises UserError if the loss diverges.
    """
    inputs, targets = train
    n = len(inputs)
    generator = torch.Generator().manual_seed(hp.seed)
    for epoch in range(1, hp.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(inputs.device)
        loss_sum = torch.zeros((), device=inputs.device)
        for batch in order.split(hp.batch_size):
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
    """Seed by ``hp`` (TrainParams), then build ``spec``'s model on ``device`` and the ``opt`` optimizer for it."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = hp.tf32
    seed_everything(hp.seed)
    model = spec.build().to(device)
    return model, build_optimizer(opt.name, model.parameters(), opt.lr, **opt.hyperparameters)


def train(spec, hp, opt, train, val, log_dir=None):
    """Train a fresh model of ``spec`` (a ModelSpec) with ``hp`` and optimizer ``opt`` on the device of ``train``.

    Returns the model and its list of EpochLogs. With ``log_dir``, each epoch's train loss and validation accuracy
    are logged there with dvclive and printed.
    """
    model, optimizer = setup(spec, hp, opt, train[0].device)
    epochs = fit(model, optimizer, train, val, hp, spec.variant)
    if log_dir is None:
        return model, list(epochs)
    from dvclive import Live  # only where logging happens: the engine imports without the DVC stack

    history = []
    with Live(str(log_dir), dvcyaml=None, save_dvc_exp=False) as live:
        for log in epochs:
            live.step = log.epoch
            live.log_metric("train/loss", log.train_loss)
            live.log_metric("val/accuracy", log.val_accuracy)
            live.next_step()
            print(f"epoch {log.epoch:>3}: train loss {log.train_loss:.6f}, val accuracy {log.val_accuracy:.4f}")
            history.append(log)
    return model, history
