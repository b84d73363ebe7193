"""Evaluation: predictions, accuracy, loss and per-class accuracy on scaled inputs."""

import torch
import torch.nn.functional as F

from mnist_dnn.models import NUM_CLASSES


@torch.no_grad()
def predict_logits(model, inputs, batch_size=10_000):
    """Logits of ``model`` in eval mode (dropout off) for ``inputs``, computed in large batches."""
    model.eval()
    return torch.cat([model(chunk) for chunk in inputs.split(batch_size)])


def accuracy(model, inputs, targets):
    """Fraction of ``inputs`` whose predicted class equals ``targets``."""
    return (predict_logits(model, inputs).argmax(1) == targets).float().mean().item()


def evaluate(model, inputs, targets):
    """Test metrics (accuracy, mean cross-entropy loss, per-class accuracy) and the predicted classes."""
    logits = predict_logits(model, inputs)
    predicted = logits.argmax(1)
    correct = (predicted == targets).float()
    per_class = torch.zeros(NUM_CLASSES, device=correct.device).index_add_(0, targets, correct)
    per_class /= torch.bincount(targets, minlength=NUM_CLASSES).clamp_(min=1)
    metrics = {
        "accuracy": correct.mean().item(),
        "loss": F.cross_entropy(logits, targets).item(),
        "per_class_accuracy": {str(c): acc for c, acc in enumerate(per_class.tolist())},
    }
    return metrics, predicted
