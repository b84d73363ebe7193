import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from helpers import make_split
from mnist_dnn.errors import UserError
from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import OptimizerParams, TrainParams
from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.lecture.optimizers import build_optimizer
from mnist_dnn.stage.device import DEVICE_ENV, select_device

VAL = make_split(200, 1)


def train_once(seed, hidden=(32, 32), dropout_p=0.3, epochs=3, inputs=None, val=VAL):
    torch.manual_seed(seed)
    spec = ModelSpec(variant="tiny", hidden=hidden, init="xavier_uniform", dropout_p=dropout_p, bias_init="pytorch")
    model = spec.build()
    optimizer = build_optimizer("adam", model.parameters(), 1e-3)
    train = make_split(600, 0) if inputs is None else inputs
    hp = TrainParams(epochs=epochs, batch_size=50, seed=seed)
    logs = list(training.fit(model, optimizer, (train, val), hp, name="tiny"))
    return logs, model.state_dict()


def test_select_device_prefers_cuda_when_available(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device() == torch.device("cpu")


def test_select_device_honours_the_environment_variable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert select_device() == torch.device("cpu")


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_inputs_and_targets_are_made_on_the_requested_device(device):
    images = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    inputs = data.to_inputs(images, device)
    targets = data.to_targets(torch.tensor([3], dtype=torch.uint8), device)
    assert inputs.device.type == targets.device.type == device
    assert inputs.dtype == torch.float32 and inputs.shape == (1, 4)
    assert targets.dtype == torch.long
    if device == "cpu":
        torch.testing.assert_close(inputs, torch.tensor([[0.0, 1.0, 0.2, 0.4]]))


def test_same_seed_gives_identical_training_and_weights():
    logs_a, weights_a = train_once(seed=777)
    logs_b, weights_b = train_once(seed=777)
    assert logs_a == logs_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_another_seed_gives_another_run():
    logs_a, _ = train_once(seed=777)
    logs_b, _ = train_once(seed=778)
    assert [log.train_loss for log in logs_a] != [log.train_loss for log in logs_b]


def test_fit_learns_and_logs_every_epoch():
    logs, _ = train_once(seed=1, dropout_p=0.0, epochs=5)
    assert [log.epoch for log in logs] == [1, 2, 3, 4, 5]
    assert logs[-1].train_loss < logs[0].train_loss
    assert logs[-1].val_accuracy > 0.9


def test_validation_does_not_change_training():
    validated, weights = train_once(seed=1)
    unvalidated, unvalidated_weights = train_once(seed=1, val=None)
    assert [log.val_accuracy for log in unvalidated] == [None] * 3
    assert [log.train_loss for log in unvalidated] == [log.train_loss for log in validated]
    assert all(torch.equal(weights[k], unvalidated_weights[k]) for k in weights)


def test_divergence_stops_with_the_variant_and_epoch_named():
    inputs, targets = make_split(600, 0)
    inputs[5, 0] = float("nan")
    with pytest.raises(UserError, match=r"^tiny: training diverged in epoch 1 \(mean train loss nan\)$"):
        train_once(seed=1, inputs=(inputs, targets))


ADAM = OptimizerParams(name="adam", lr=1e-3)


def reference_epochs(spec, hp, train, epochs):
    """A plain loop to hold the engine to: DataLoader batches in the engine's order, unfused Adam, no tricks."""
    model, _ = training.setup(spec, hp, ADAM, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM.lr)
    generator = torch.Generator().manual_seed(hp.seed)
    epoch_losses = []
    for _ in range(epochs):
        order = torch.randperm(len(train[0]), generator=generator).tolist()
        # its own generator, so that the DataLoader draws nothing from the global RNG that dropout uses
        loader = DataLoader(TensorDataset(*train), batch_size=hp.batch_size, sampler=order, generator=torch.Generator())
        losses = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item() * len(y))
        epoch_losses.append(sum(losses) / len(order))
    return epoch_losses, model.state_dict()


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_engine_computes_what_a_plain_loop_computes(dropout_p):
    hp = TrainParams(epochs=3, batch_size=50, seed=777)
    spec = ModelSpec(variant="tiny", hidden=(64, 64), init="xavier_uniform", dropout_p=dropout_p, bias_init="pytorch")
    train, val = make_split(400, 0), make_split(100, 1)
    engine, logs = training.train(spec, hp, ADAM, (train, val))
    assert [log.epoch for log in logs] == [1, 2, 3]
    expected_losses, expected_weights = reference_epochs(spec, hp, train, hp.epochs)
    torch.testing.assert_close([log.train_loss for log in logs], expected_losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(engine.state_dict(), expected_weights, rtol=1e-4, atol=1e-5)


def test_the_loss_after_each_step_is_what_a_plain_loop_measures_on_every_fifth_batch():
    hp = TrainParams(epochs=2, batch_size=50, seed=777)
    spec = ModelSpec(variant="tiny", hidden=(32,), init="xavier_uniform", bias_init="normal")
    train = make_split(630, 0)  # 13 batches: 1, 6 and 11 (counted from 1) are measured
    _, logs = training.train(spec, hp, ADAM, (train, None))
    model, _ = training.setup(spec, hp, ADAM, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM.lr)
    generator = torch.Generator().manual_seed(hp.seed)
    for log in logs:
        order = torch.randperm(len(train[0]), generator=generator)
        after = []
        for number, batch in enumerate(order.split(hp.batch_size)):
            optimizer.zero_grad()
            F.cross_entropy(model(train[0][batch]), train[1][batch]).backward()
            optimizer.step()
            if number % training.AFTER_STEP_EVERY == 0:
                with torch.no_grad():
                    after.append(F.cross_entropy(model(train[0][batch]), train[1][batch]).item())
        assert len(after) == 3
        assert log.train_loss_after_step == pytest.approx(sum(after) / len(after), rel=1e-5)


def test_the_lab_biases_are_drawn_from_a_standard_normal():
    model = ModelSpec(variant="wide", hidden=(4096,), init="xavier_uniform", bias_init="normal").build()
    bias = model[0].bias.detach()
    assert abs(bias.mean().item()) < 0.05 and abs(bias.std().item() - 1) < 0.05
    default = ModelSpec(variant="wide", hidden=(4096,), init="xavier_uniform", bias_init="pytorch").build()
    assert default[0].bias.abs().max().item() <= 1 / 28  # nn.Linear's U(±1/√784)


@pytest.mark.usefixtures("outside_repo")
def test_train_logs_every_epoch_with_dvclive_and_logs_nothing_else(tmp_path):
    hp = TrainParams(epochs=2, batch_size=50, seed=777)
    spec = ModelSpec(variant="tiny", hidden=(16,), init="xavier_uniform", bias_init="pytorch")
    train, val = make_split(200, 0), make_split(100, 1)
    _, logs = training.train(spec, hp, ADAM, (train, val), log_dir=tmp_path / "log")
    _, unlogged = training.train(spec, hp, ADAM, (train, val))
    assert logs == unlogged  # logging changes nothing
    loss = pd.read_csv(tmp_path / "log/plots/metrics/train/loss.tsv", sep="\t")
    after_step = pd.read_csv(tmp_path / "log/plots/metrics/train/loss_after_step.tsv", sep="\t")
    assert after_step["loss_after_step"].tolist() == pytest.approx([log.train_loss_after_step for log in logs])
    accuracy = pd.read_csv(tmp_path / "log/plots/metrics/val/accuracy.tsv", sep="\t")
    assert loss["step"].tolist() == accuracy["step"].tolist() == [1, 2]
    assert loss["loss"].tolist() == pytest.approx([log.train_loss for log in logs])
    assert accuracy["accuracy"].tolist() == pytest.approx([log.val_accuracy for log in logs])
    assert not list(tmp_path.glob("*.tmp"))


def test_train_step_adds_the_batch_loss_before_and_after_its_step_to_the_sums_in_place():
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10)
    plain = copy.deepcopy(model)
    optimizer, plain_optimizer = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, plain))
    inputs, targets = make_split(20, 0)
    batch = torch.tensor([3, 1, 4, 1, 5])
    before = F.cross_entropy(plain(inputs[batch]), targets[batch])
    before.backward()
    plain_optimizer.step()
    after = F.cross_entropy(plain(inputs[batch]), targets[batch])
    loss_sums = torch.tensor([2.0, 3.0, 4.0])
    training.train_step(model, optimizer, (inputs, targets), batch, loss_sums, torch.Generator())
    assert loss_sums.tolist() == pytest.approx([2 + 5 * before.item(), 3 + 5 * after.item(), 4 + 5], rel=1e-6)
    loss_sums = torch.tensor([2.0, 3.0, 4.0])
    training.train_step(model, optimizer, (inputs, targets), batch, loss_sums)  # no generator: no loss after the step
    assert loss_sums.tolist()[1:] == [3.0, 4.0]


def test_fit_reads_the_device_once_per_epoch(monkeypatch):
    reads = []
    for read in ("item", "tolist"):
        original = getattr(torch.Tensor, read)
        monkeypatch.setattr(torch.Tensor, read, lambda self, f=original: reads.append(self.shape) or f(self))
    spec = ModelSpec(variant="tiny", hidden=(8,), init="xavier_uniform", dropout_p=0.3, bias_init="pytorch")
    hp = TrainParams(epochs=3, batch_size=50, seed=777)
    model, optimizer = training.setup(spec, hp, ADAM, "cpu")
    logs = list(training.fit(model, optimizer, (make_split(630, 0), None), hp))
    assert len(logs) == 3 and reads == [torch.Size([3])] * 3  # the loss sums: before the step, after it, samples
