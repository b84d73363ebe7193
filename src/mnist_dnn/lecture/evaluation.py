"""Evaluation: predictions, accuracy, loss and per-class accuracy on scaled inputs."""

import torch
import torch.nn.functional as F

from mnist_dnn.errors import UserError
from mnist_dnn.lecture.models import NUM_CLASSES


@torch.no_grad()
def predict_logits(model, inputs, batch_size=10_000):
    """Logits of ``model`` in eval mode (dropout off) for ``inputs``, computed in large batches; a UserError if any
    overflows (finite weights too large for float32)."""
    model.eval()
    logits = torch.cat([model(chunk) for chunk in inputs.split(batch_size)])
    if not torch.isfinite(logits).all():
        raise UserError("the model's outputs overflow float32 (its weights are finite but too large)")
    return logits


def accuracy(model, inputs, targets):
    """Fraction of ``inputs`` whose predicted class equals ``targets``."""
    return (predict_logits(model, inputs).argmax(1) == targets).sum().item() / len(targets)


def evaluate(model, inputs, targets):
    """Test metrics (accuracy, mean cross-entropy loss, per-class accuracy) and the predicted classes."""
    logits = predict_logits(model, inputs)
    predicted = logits.argmax(1)
    correct = predicted == targets
    hits = torch.bincount(targets[correct], minlength=NUM_CLASSES).tolist()
    counts = torch.bincount(targets, minlength=NUM_CLASSES).tolist()
    metrics = {
        "accuracy": correct.sum().item() / len(targets),
        "loss": F.cross_entropy(logits, targets).item(),
        "per_class_accuracy": {str(c): h / n for c, (h, n) in enumerate(zip(hits, counts)) if n},
    }
    return metrics, predicted
