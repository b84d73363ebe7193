"""MNIST as compact tensors: load with torchvision, split off validation, save, load, scale to model inputs."""

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mnist_dnn.errors import UserError
from mnist_dnn.lecture.model_file import check_header


def load_mnist(root, train, limit=None):
    """MNIST's training (``train=True``) or test images and labels from ``root``, both uint8; the first ``limit``
    of them only, where given."""
    from torchvision.datasets import MNIST  # here, not at the top: torchvision costs each stage ~0.3 s to import

    try:
        dataset = MNIST(root, train=train, download=False)
    except RuntimeError as err:
        raise UserError(f"{root}: {err}") from None
    return dataset.data[:limit], dataset.targets[:limit].to(torch.uint8)


def split_validation(images, labels, val_size, seed):
    """Split off ``val_size`` samples, chosen by a seeded permutation: ``(train, val)`` pairs."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val, train = order[:val_size], order[val_size:]
    return (images[train], labels[train]), (images[val], labels[val])


def save_split(path, images, labels):
    """Save uint8 ``images`` (N×28×28) and ``labels`` (N) to ``path`` as safetensors."""
    save_file({"images": images.contiguous(), "labels": labels.contiguous()}, path)


def load_split(path):
    """The uint8 ``(images, labels)`` saved at ``path``: N×28×28 images, N labels from 0 to 9."""
    try:
        check_header(path, "data split")
        tensors = load_file(path)
        images, labels = tensors["images"], tensors["labels"]
    except UserError as err:
        raise UserError(f"{path}: {err}; run `dvc repro prepare`") from None
    except (OSError, SafetensorError, KeyError) as err:
        raise UserError(f"{path}: cannot load data split ({err}); run `dvc repro prepare`") from None
    if not (images.dtype == labels.dtype == torch.uint8 and images.shape[1:] == (28, 28)
            and labels.shape == images.shape[:1] and (labels.numel() == 0 or labels.max() <= 9)):
        raise UserError(f"{path}: not a data split (uint8 images N×28×28, N labels 0–9); run `dvc repro prepare`")
    return images, labels


def to_inputs(images, device):
    """uint8 images → float32 rows of 784 pixels in [0, 1] on ``device``."""
    return images.to(device).reshape(len(images), -1).float().div_(255)


def to_targets(labels, device):
    """uint8 labels → int64 class indices on ``device``."""
    return labels.to(device=device, dtype=torch.long)


def load_for_model(path, device):
    """The split saved at ``path`` as ``(inputs, targets)`` ready for a model on ``device``."""
    images, labels = load_split(path)
    return to_inputs(images, device), to_targets(labels, device)


def load_splits(*paths, device):
    """Each split saved at ``paths`` as ``(inputs, targets)`` on ``device``, in order."""
    return [load_for_model(path, device) for path in paths]
