import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_dnn.lecture.evaluation import accuracy, evaluate, predict_logits


def argmax_model():
    """10 → 10 identity layer: the logits are the input, so the predicted class is the input's argmax."""
    model = nn.Linear(10, 10)
    with torch.no_grad():
        model.weight.copy_(torch.eye(10))
        model.bias.zero_()
    return model


def one_hot_inputs(classes, scale=3.0):
    return F.one_hot(torch.tensor(classes), 10).float() * scale


# predicted: 0 1 1 2 2 2 7 7 ; targets: 0 1 3 2 2 5 7 9
PREDICTED = [0, 1, 1, 2, 2, 2, 7, 7]
TARGETS = [0, 1, 3, 2, 2, 5, 7, 9]


def test_evaluate_accuracy_and_predictions():
    metrics, predicted = evaluate(argmax_model(), one_hot_inputs(PREDICTED), torch.tensor(TARGETS))
    assert predicted.tolist() == PREDICTED
    assert metrics["accuracy"] == 5 / 8


def test_evaluate_per_class_accuracy_omits_absent_classes():
    metrics, _ = evaluate(argmax_model(), one_hot_inputs(PREDICTED), torch.tensor(TARGETS))
    assert metrics["per_class_accuracy"] == {"0": 1.0, "1": 1.0, "2": 1.0, "3": 0.0, "5": 0.0, "7": 1.0, "9": 0.0}


def test_evaluate_loss_is_mean_cross_entropy():
    torch.manual_seed(0)
    model = nn.Linear(6, 10)
    inputs, targets = torch.randn(20, 6), torch.randint(0, 10, (20,))
    metrics, _ = evaluate(model, inputs, targets)
    with torch.no_grad():
        expected = F.cross_entropy(model(inputs), targets).item()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-6)
    logits = model(inputs).detach()
    assert metrics["accuracy"] == (logits.argmax(1) == targets).sum().item() / 20


def test_evaluate_loss_of_confident_right_and_wrong_predictions():
    # logits 3·one_hot(prediction): right → -log(e^3 / (e^3 + 9)), wrong → -log(1 / (e^3 + 9))
    metrics, _ = evaluate(argmax_model(), one_hot_inputs([4, 4]), torch.tensor([4, 6]))
    e3 = torch.tensor(3.0).exp().item()
    expected = (-torch.tensor(e3 / (e3 + 9)).log() - torch.tensor(1 / (e3 + 9)).log()).item() / 2
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)


def test_accuracy_agrees_with_evaluate():
    torch.manual_seed(0)
    model = nn.Linear(6, 10)
    inputs, targets = torch.randn(50, 6), torch.randint(0, 10, (50,))
    assert accuracy(model, inputs, targets) == evaluate(model, inputs, targets)[0]["accuracy"]
    assert accuracy(argmax_model(), one_hot_inputs(PREDICTED), torch.tensor(TARGETS)) == 5 / 8


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_predict_logits_batching_matches_one_batch_and_sets_eval_mode(batch_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10)).train()
    inputs = torch.randn(20, 6)
    logits = predict_logits(model, inputs, batch_size=batch_size)
    assert not model.training
    assert not any(m.training for m in model.modules())
    assert not logits.requires_grad
    with torch.no_grad():
        expected = model(inputs)
    assert logits.shape == (20, 10)
    torch.testing.assert_close(logits, expected)
