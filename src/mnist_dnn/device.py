"""Where the tensors live: the device a run uses, chosen at run time and never a DVC param."""

import os

import torch

DEVICE_ENV = "MNIST_DNN_DEVICE"


def select_device():
    """``$MNIST_DNN_DEVICE`` when set (e.g. ``cpu``), else CUDA when PyTorch sees a GPU, else CPU."""
    requested = os.environ.get(DEVICE_ENV)
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
