"""Where the tensors live and how steps run there: chosen at run time by environment variables, never DVC params."""

import os

import torch

DEVICE_ENV = "MNIST_DNN_DEVICE"
CUDA_GRAPHS_ENV = "MNIST_DNN_CUDA_GRAPHS"


def select_device():
    """``$MNIST_DNN_DEVICE`` when set (e.g. ``cpu``), else CUDA when PyTorch sees a GPU, else CPU."""
    requested = os.environ.get(DEVICE_ENV)
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cuda_graphs_requested():
    """Whether ``$MNIST_DNN_CUDA_GRAPHS`` is ``1``: CUDA graphs stay opt-in until the GPU check has passed on a GPU."""
    return os.environ.get(CUDA_GRAPHS_ENV) == "1"
