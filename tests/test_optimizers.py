import io

import numpy as np
import pytest
import torch

from helpers import PARAMS
from mnist_dnn.lecture.optimizers import (
    HYPERPARAMETERS,
    OPTIMIZERS,
    AdagradDA,
    Ftrl,
    ProximalAdagrad,
    ProximalGradientDescent,
    build_optimizer,
    is_capturable,
)

# Two large weights with steady gradients, two small ones with small gradients of changing sign.
W0 = np.array([1.0, -0.8, 0.05, -0.04])
GRADS = np.array([
    [0.3, -0.2, 0.01, -0.02],
    [0.2, -0.4, -0.01, 0.01],
    [0.4, -0.1, 0.02, 0.005],
    [0.1, -0.3, -0.015, -0.01],
])


# Step-by-step references, written straight from the TensorFlow kernels' formulas.
def reference_ftrl(w, grads, lr, lr_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0, l2_shrinkage=0.0,
                   beta=0.0):
    n, z = np.full_like(w, initial_accumulator_value), np.zeros_like(w)
    for g in grads:
        n_new = n + g * g
        z = z + g + 2 * l2_shrinkage * w - (n_new ** -lr_power - n ** -lr_power) / lr * w
        quadratic = (beta + n_new ** -lr_power) / lr + 2 * l2
        w = np.where(np.abs(z) > l1, (np.sign(z) * l1 - z) / quadratic, 0.0)
        n = n_new
        yield w


def reference_proximal_gd(w, grads, lr, l1=0.0, l2=0.0):
    for g in grads:
        prox_v = w - lr * g
        w = np.sign(prox_v) / (1 + lr * l2) * np.maximum(np.abs(prox_v) - lr * l1, 0)
        yield w


def reference_proximal_adagrad(w, grads, lr, initial_accumulator_value=0.1, l1=0.0, l2=0.0):
    accum = np.full_like(w, initial_accumulator_value)
    for g in grads:
        accum = accum + g * g
        rate = lr / np.sqrt(accum)
        prox_v = w - rate * g
        w = np.sign(prox_v) / (1 + rate * l2) * np.maximum(np.abs(prox_v) - rate * l1, 0)
        yield w


def reference_adagrad_da(w, grads, lr, initial_gradient_squared_accumulator_value=0.1, l1=0.0, l2=0.0):
    g_sum, gg = np.zeros_like(w), np.full_like(w, initial_gradient_squared_accumulator_value)
    for t, g in enumerate(grads, start=1):
        g_sum = g_sum + g
        gg = gg + g * g
        tmp = np.sign(g_sum) * np.maximum(np.abs(g_sum) - l1 * t, 0) if l1 > 0 else g_sum
        w = -lr * tmp / (l2 * t * lr + np.sqrt(gg))
        yield w


REFERENCES = {
    "ftrl": reference_ftrl,
    "proximal_gd": reference_proximal_gd,
    "proximal_adagrad": reference_proximal_adagrad,
    "adagrad_da": reference_adagrad_da,
}

# Per optimizer, an l1 (with l2) strong enough to zero the two small weights by the last step but not the large ones.
REGULARISED = {
    "ftrl": dict(lr=0.5, l1=0.1, l2=0.2),
    "proximal_gd": dict(lr=0.1, l1=0.5, l2=0.3),
    "proximal_adagrad": dict(lr=0.1, l1=0.3, l2=0.5),
    "adagrad_da": dict(lr=0.5, l1=0.05, l2=0.3),
}

CASES = [
    ("ftrl", dict(lr=0.5)),
    ("ftrl", REGULARISED["ftrl"]),
    ("ftrl", dict(lr=0.5, lr_power=-0.7, initial_accumulator_value=0.2, l1=0.02, l2=0.1, l2_shrinkage=0.3, beta=0.4)),
    ("ftrl", dict(lr=0.1, lr_power=0.0, l2_shrinkage=0.5)),
    ("proximal_gd", dict(lr=0.1)),
    ("proximal_gd", REGULARISED["proximal_gd"]),
    ("proximal_gd", dict(lr=0.2, l2=1.0)),
    ("proximal_adagrad", dict(lr=0.1)),
    ("proximal_adagrad", REGULARISED["proximal_adagrad"]),
    ("proximal_adagrad", dict(lr=0.3, initial_accumulator_value=0.5, l2=2.0)),
    ("adagrad_da", dict(lr=0.5)),
    ("adagrad_da", REGULARISED["adagrad_da"]),
    ("adagrad_da", dict(lr=0.2, initial_gradient_squared_accumulator_value=0.3, l2=1.5)),
]


def run(name, hyperparameters, grads, w0=W0):
    """The weights after each step of optimizer ``name`` fed ``grads`` by hand, starting from ``w0``."""
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    optimizer = OPTIMIZERS[name]([w], **hyperparameters)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        yield w.detach().clone()


@pytest.mark.parametrize(("name", "hyperparameters"), CASES)
def test_each_step_matches_the_rule_written_out_by_hand(name, hyperparameters):
    expected = list(REFERENCES[name](W0, GRADS, **hyperparameters))
    for step, (actual, wanted) in enumerate(zip(run(name, hyperparameters, GRADS), expected, strict=True)):
        torch.testing.assert_close(actual, torch.from_numpy(wanted), rtol=1e-12, atol=1e-15, msg=f"step {step}")


@pytest.mark.parametrize("name", REGULARISED)
def test_l1_drives_small_weights_to_exactly_zero(name):
    *_, final = run(name, REGULARISED[name], GRADS)
    zeroed = torch.tensor([False, False, True, True])
    assert (final[zeroed] == 0.0).all(), final
    assert (final[~zeroed] != 0.0).all(), final
    unregularised = {key: value for key, value in REGULARISED[name].items() if key != "l1"}
    *_, dense = run(name, unregularised, GRADS)
    assert (dense != 0.0).all(), dense


@pytest.mark.parametrize("name", REGULARISED)
def test_an_optimizer_restored_from_its_state_dict_continues_exactly_like_the_original(name):
    original_w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    original = OPTIMIZERS[name]([original_w], **REGULARISED[name])
    for g in GRADS[:2]:
        original_w.grad = torch.tensor(g)
        original.step()
    saved = io.BytesIO()
    torch.save(original.state_dict(), saved)
    saved.seek(0)
    restored_w = original_w.detach().clone().requires_grad_()
    restored = OPTIMIZERS[name]([restored_w], **REGULARISED[name])
    restored.load_state_dict(torch.load(saved))
    for g in GRADS[2:]:
        for w, optimizer in ((original_w, original), (restored_w, restored)):
            w.grad = torch.tensor(g)
            optimizer.step()
        assert torch.equal(restored_w, original_w)


@pytest.mark.parametrize("name", REGULARISED)
def test_parameters_without_a_gradient_are_left_alone(name):
    w, untouched = torch.ones(3, dtype=torch.float64, requires_grad=True), torch.ones(2, requires_grad=True)
    optimizer = OPTIMIZERS[name]([w, untouched], **REGULARISED[name])
    w.grad = torch.full_like(w, 0.5)
    optimizer.step()
    assert torch.equal(untouched, torch.ones(2)) and untouched not in optimizer.state


@pytest.mark.parametrize(("cls", "bad"), [
    (Ftrl, dict(lr=0.0)),
    (Ftrl, dict(lr_power=0.5)),
    (Ftrl, dict(initial_accumulator_value=-0.1)),
    (Ftrl, dict(l1=-0.1)),
    (Ftrl, dict(l2=-0.1)),
    (Ftrl, dict(l2_shrinkage=-0.1)),
    (Ftrl, dict(beta=-0.1)),
    (ProximalGradientDescent, dict(lr=-0.1)),
    (ProximalGradientDescent, dict(l1=-0.1)),
    (ProximalGradientDescent, dict(l2=-0.1)),
    (ProximalAdagrad, dict(lr=0.0)),
    (ProximalAdagrad, dict(initial_accumulator_value=0.0)),
    (ProximalAdagrad, dict(l1=-0.1)),
    (ProximalAdagrad, dict(l2=-0.1)),
    (AdagradDA, dict(lr=-1.0)),
    (AdagradDA, dict(initial_gradient_squared_accumulator_value=0.0)),
    (AdagradDA, dict(l1=-0.1)),
    (AdagradDA, dict(l2=float("nan"))),
])
def test_bad_hyperparameters_raise_a_value_error_naming_them(cls, bad):
    [name] = bad
    with pytest.raises(ValueError, match=f"Invalid {name}:"):
        cls([torch.zeros(2, requires_grad=True)], **bad)


def test_build_optimizer_passes_extra_hyperparameters_through():
    optimizer = build_optimizer("ftrl", [torch.zeros(2, requires_grad=True)], 0.1, l1=0.01)
    assert isinstance(optimizer, Ftrl)
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["l1"] == 0.01
    assert isinstance(build_optimizer("adam", [torch.zeros(2, requires_grad=True)], 1e-3), torch.optim.Adam)


def test_the_registry_is_the_optimizer_study_each_optimizer_with_its_hyperparameters():
    ours = [name for name, optimizer in OPTIMIZERS.items() if optimizer.__module__ == "mnist_dnn.lecture.optimizers"]
    assert ours == list(REFERENCES)  # each of ours has its rule written out by hand above
    assert list(HYPERPARAMETERS) == list(OPTIMIZERS)
    assert {study.name for study in PARAMS.optimizer_study.optimizers.values()} == set(OPTIMIZERS)


@pytest.mark.parametrize("name", REGULARISED)
def test_each_optimizer_reduces_the_loss_of_a_logistic_regression(name):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 5, dtype=torch.float64, generator=generator)
    y = (x @ torch.tensor([2.0, -1.0, 0.5, 0.0, 0.0], dtype=torch.float64) > 0).to(torch.float64)
    weights = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = build_optimizer(name, [weights, bias], 0.5)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weights + bias, y)
        loss.backward()
        return loss

    losses = [optimizer.step(closure).item() for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


def host_read(*args, **kwargs):
    raise AssertionError("step read a tensor's value on the host")


@pytest.mark.parametrize(("name", "hyperparameters"), CASES)
def test_our_optimizers_step_without_reading_a_tensor_on_the_host(monkeypatch, name, hyperparameters):
    # a read of a value on the host would wait for the GPU, and a CUDA graph would replay what it read at capture
    for method in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, method, host_read)
    steps = list(run(name, hyperparameters, GRADS))
    monkeypatch.undo()
    torch.testing.assert_close(steps[-1], torch.from_numpy(list(REFERENCES[name](W0, GRADS, **hyperparameters))[-1]))


@pytest.mark.parametrize("name", REGULARISED)
def test_our_optimizers_keep_all_their_state_in_tensors_on_the_parameters_device(name):
    # on the meta device, a tensor made anywhere else (a step count on the CPU) or a Python number shows up
    w = torch.zeros(4, device="meta", requires_grad=True)
    optimizer = OPTIMIZERS[name]([w], **REGULARISED[name])
    for _ in range(2):
        w.grad = torch.ones(4, device="meta")
        optimizer.step()
    state = optimizer.state[w]
    assert all(isinstance(value, torch.Tensor) and value.device == w.device for value in state.values()), state


def test_capturable_optimizers_are_ours_sgd_and_those_built_capturable():
    def build(name, capturable):
        return build_optimizer(name, [torch.zeros(2, requires_grad=True)], 0.1, capturable=capturable)

    capturable = {name: is_capturable(build(name, capturable=True)) for name in OPTIMIZERS}
    assert [name for name, yes in capturable.items() if not yes] == ["adagrad"]  # PyTorch's has no capturable mode
    assert not any(is_capturable(build(name, capturable=False)) for name in ["adam", "adadelta", "rmsprop"])
    adam = build("adam", capturable=True)
    assert adam.defaults["capturable"] and adam.defaults["fused"]
