"""mnist_dnn.lecture.cuda_graphs: the static buffers that CUDA graphs need, held on the CPU to the loop they replaced,
and graphed epochs with the graph replaced by eager replays."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import make_split
from mnist_dnn.errors import UserError
from mnist_dnn.lecture import cuda_graphs, training
from mnist_dnn.lecture.config import OptimizerParams, TrainParams
from mnist_dnn.lecture.evaluation import accuracy
from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.lecture.optimizers import build_optimizer


def fit_of_107b982(model, optimizer, splits, hp, name="model"):
    """``training.fit`` as it was at commit 107b982, before the static buffers and before it measured the loss after
    each step: a fresh permutation and loss sum per epoch."""
    (inputs, targets), val = splits
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
        yield training.EpochLog(epoch, train_loss, None, accuracy(model, *val) if val else None)


HP = TrainParams(epochs=3, batch_size=50, seed=777)
TRAIN, VAL = make_split(630, 0), make_split(100, 1)  # 12 full batches and one of 30


def run(fit, opt, train=TRAIN, **kwargs):
    spec = ModelSpec(variant="tiny", hidden=(32, 32), init="xavier_uniform", dropout_p=0.3, bias_init="pytorch")
    model, optimizer = training.setup(spec, HP, opt, "cpu")
    logs = list(fit(model, optimizer, (train, VAL), HP, "tiny", **kwargs))
    return logs, model.state_dict(), optimizer.state_dict()["state"]


def assert_bit_identical(a, b):
    (logs_a, weights_a, state_a), (logs_b, weights_b, state_b) = a, b
    assert logs_a == logs_b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert all(torch.equal(state_a[i][k], state_b[i][k]) for i in state_a for k in state_a[i])


OPTIMIZERS = [
    OptimizerParams(name="adam", lr=1e-3),
    OptimizerParams(name="sgd", lr=0.01, momentum=0.9),
    OptimizerParams(name="adagrad", lr=0.01),
    OptimizerParams(name="adagrad_da", lr=0.1, l1=0.001, l2=0.01),
    OptimizerParams(name="ftrl", lr=0.1, l1=0.001),
    OptimizerParams(name="proximal_adagrad", lr=0.1, l2=0.01),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda opt: opt.name)
def test_fit_on_the_cpu_computes_bit_for_bit_what_the_loop_it_replaced_computes(opt):
    logs, weights, state = run(training.fit, opt)
    assert all(log.train_loss_after_step > 0 for log in logs)
    # measuring the loss after each step, dropout included, leaves every weight and loss as they were without it
    without_after_step = [dataclasses.replace(log, train_loss_after_step=None) for log in logs]
    assert_bit_identical((without_after_step, weights, state), run(fit_of_107b982, opt))


class Uncaptured(cuda_graphs.GraphedEpoch):
    """GraphedEpoch with the CUDA graph replaced by a call that reads the static buffer when it is replayed, as the
    graph does: everything else (the first chunk as warm-up, refilling the buffer, the eager rest) is the real one."""

    captures = replays = 0

    def capture(self):
        Uncaptured.captures += 1
        self.run_batches()

        def replay():
            Uncaptured.replays += 1
            self.run_batches()

        return replay


@pytest.mark.parametrize("value, expected", [(None, 0), ("0", 0), ("", 0), ("1", cuda_graphs.GRAPH_STEPS)])
def test_cuda_graphs_run_only_when_asked_for(monkeypatch, value, expected):
    monkeypatch.delenv("MNIST_DNN_CUDA_GRAPHS", raising=False)
    if value is not None:
        monkeypatch.setenv("MNIST_DNN_CUDA_GRAPHS", value)
    capturable = build_optimizer("adam", [torch.zeros(1, requires_grad=True)], 1e-3, True)
    assert cuda_graphs.default_graph_steps(True, capturable) == expected  # as if the tensors were on CUDA
    assert cuda_graphs.default_graph_steps(False, capturable) == 0


def test_a_graph_samples_the_loss_after_the_step_on_the_same_batches_as_eager_steps():
    with pytest.raises(ValueError, match="multiple of 5"):
        run(training.fit, OPTIMIZERS[0], graph_steps=4)


@pytest.mark.parametrize(
    ("n", "graph_steps", "replays"),
    [
        (630, 5, 3 * 2 - 1),  # per epoch 2 chunks of 5 batches (the first one captured), then 2 of 50 and one of 30
        (500, 5, 3 * 2 - 1),  # the same chunks, and no eager batch
        (630, 15, 0),  # a graph longer than the epoch: every step eager
    ],
)
def test_graphed_epochs_refill_their_static_buffer_and_run_the_rest_eagerly(monkeypatch, n, graph_steps, replays):
    monkeypatch.setattr(training, "GraphedEpoch", Uncaptured)
    monkeypatch.setattr(Uncaptured, "captures", 0)
    monkeypatch.setattr(Uncaptured, "replays", 0)
    train = TRAIN[0][:n], TRAIN[1][:n]
    graphed = run(training.fit, OPTIMIZERS[0], train, graph_steps=graph_steps)
    assert (Uncaptured.captures, Uncaptured.replays) == (int(replays > 0), replays)
    assert_bit_identical(graphed, run(training.fit, OPTIMIZERS[0], train, graph_steps=0))


def test_permutations_refill_one_buffer_with_the_seeded_generators_draws():
    permutations = cuda_graphs.Permutations(1000, seed=5, device="cpu")
    buffer = permutations.order
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        order = permutations.refill()
        assert order is buffer
        assert torch.equal(order, torch.randperm(1000, generator=generator))
    assert not torch.equal(order, torch.randperm(1000, generator=torch.Generator().manual_seed(5)))
