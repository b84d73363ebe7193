"""Training: the mini-batch loop over tensors kept on the device, and the cost after each step that the lecture
printed."""

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnist_dnn.errors import UserError
from mnist_dnn.lecture.cuda_graphs import GraphedEpoch, Permutations, default_graph_steps, uncaptured_steps_quiet
from mnist_dnn.lecture.evaluation import accuracy
from mnist_dnn.lecture.models import masks_from
from mnist_dnn.lecture.optimizers import build_optimizer


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float  # mean over the epoch's batches of the loss before each step
    train_loss_after_step: float  # the same after each step, as the lecture's labs printed their cost (sampled)
    val_accuracy: float | None


# The loss after each step costs a forward pass, a third of a step: it is measured on every AFTER_STEP_EVERY-th
# batch of an epoch (dividing cuda_graphs.GRAPH_STEPS, so that a CUDA graph samples the same batches), with dropout
# masks from a generator of its own, seeded from train.seed with AFTER_STEP_SALT: measuring it leaves training as it is.
AFTER_STEP_EVERY = 5
AFTER_STEP_SALT = 0x5EED
# An epoch's loss sums, one tensor on the device read once an epoch: the loss before each step, the loss after the
# sampled steps, and the number of samples those had.
BEFORE, AFTER, SAMPLES = range(3)


def train_step(model, optimizer, train, batch, loss_sums, masks=None):
    """One optimizer step on the samples of ``train = (inputs, targets)`` at indices ``batch``; adds the batch's
    summed loss to ``loss_sums[BEFORE]``.

    With a generator ``masks``, also the summed loss after the step (a no-grad forward in train mode, its dropout
    masks from ``masks``) to ``loss_sums[AFTER]`` and the batch's size to ``loss_sums[SAMPLES]``.
    """
    inputs, targets = train
    x, y = inputs[batch], targets[batch]
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss_sums[BEFORE] += loss.detach() * len(batch)
    if masks is not None:
        with torch.no_grad(), masks_from(model, masks):
            after = torch.stack([F.cross_entropy(model(x), y), torch.ones((), device=x.device)])
            loss_sums[AFTER:] += after * len(batch)


def eager_epoch(step, order, batch_size, first=0):
    """Call ``step(batch, number)`` on each mini-batch of ``batch_size`` indices of ``order`` (the last one may be
    smaller), numbered from ``first``."""
    for number, start in enumerate(range(0, len(order), batch_size), first):
        step(order[start : start + batch_size], number)


def fit(model, optimizer, splits, hp, name="model", graph_steps=None):
    """Train ``model`` on ``splits = (train, val)``, each ``(inputs, targets)``, for ``hp.epochs``, yielding an
    EpochLog after each epoch.

    The data stays on its device; each epoch draws a permutation seeded by ``hp.seed`` (on the CPU, so the order is
    the same on every device) and slices ``hp.batch_size`` mini-batches from it. The epoch's loss is summed on the
    device and read once. ``val=None`` skips validation. Raises UserError if the loss diverges.

    ``graph_steps``: steps per CUDA graph (GraphedEpoch); 0 runs every step eagerly; None: default_graph_steps.
    """
    train, val = splits
    inputs, _ = train
    n = len(inputs)
    permutations = Permutations(n, hp.seed, inputs.device)
    loss_sums = torch.zeros(3, device=inputs.device)  # BEFORE, AFTER, SAMPLES
    masks = torch.Generator(inputs.device).manual_seed(hp.seed ^ AFTER_STEP_SALT)

    def step(batch, number):
        sampled = number % AFTER_STEP_EVERY == 0
        train_step(model, optimizer, train, batch, loss_sums, masks if sampled else None)

    eager = functools.partial(eager_epoch, step, batch_size=hp.batch_size)
    if graph_steps is None:
        graph_steps = default_graph_steps(inputs.is_cuda, optimizer)
    run_epoch = GraphedEpoch(eager, hp.batch_size, graph_steps, [masks], AFTER_STEP_EVERY) if graph_steps else eager
    for epoch in range(1, hp.epochs + 1):
        model.train()
        loss_sums.zero_()
        with uncaptured_steps_quiet():
            run_epoch(permutations.refill())
        before, after, sampled = loss_sums.tolist()
        train_loss, after_step = before / n, after / sampled
        if not math.isfinite(train_loss):
            raise UserError(f"{name}: training diverged in epoch {epoch} (mean train loss {train_loss})")
        yield EpochLog(epoch, train_loss, after_step, accuracy(model, *val) if val else None)


def setup(spec, hp, opt, device):
    """Seed by ``hp`` (TrainParams), then build ``spec``'s model on ``device`` and the ``opt`` optimizer for it
    (capturable on CUDA, for ``fit``'s graphs)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = hp.tf32
    torch.manual_seed(hp.seed)  # PyTorch's generators, CPU and every CUDA device: init and dropout masks
    model = spec.build().to(device)
    capturable = torch.device(device).type == "cuda"
    return model, build_optimizer(opt.name, model.parameters(), opt.lr, capturable, **opt.hyperparameters)


def train(spec, hp, opt, splits, log_dir=None):
    """Train a fresh model of ``spec`` (a ModelSpec) with ``hp`` and optimizer ``opt`` on ``splits = (train, val)``
    (as ``fit`` does), on the device they are on.

    Returns the model and its list of EpochLogs. With ``log_dir``, each epoch's train loss (before and after each
    step) and validation accuracy are logged there with dvclive and printed.
    """
    (inputs, _), _ = splits
    model, optimizer = setup(spec, hp, opt, inputs.device)
    epochs = fit(model, optimizer, splits, hp, spec.variant)
    if log_dir is None:
        return model, list(epochs)
    from dvclive import Live  # only where logging happens: the engine imports without the DVC stack

    history = []
    with Live(str(log_dir), dvcyaml=None, save_dvc_exp=False) as live:
        for log in epochs:
            live.step = log.epoch
            live.log_metric("train/loss", log.train_loss)
            live.log_metric("train/loss_after_step", log.train_loss_after_step)
            live.log_metric("val/accuracy", log.val_accuracy)
            live.next_step()
            print(f"epoch {log.epoch:>3}: train loss {log.train_loss:.6f}"
                  f" (after each step {log.train_loss_after_step:.6f}), val accuracy {log.val_accuracy:.4f}")
            history.append(log)
    return model, history
