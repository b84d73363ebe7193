"""Where the tensors live and how steps run there: chosen at run time by environment variables, never DVC params."""

import os
import re

import torch

from mnist_dnn.errors import UserError, environment_choice
from mnist_dnn.stage import numerics

DEVICE_ENV = "MNIST_DNN_DEVICE"
DEVICE = re.compile(r"cpu|cuda(:(?P<index>\d{1,4}))?")  # the devices this project runs on
CUDA_GRAPHS_ENV = "MNIST_DNN_CUDA_GRAPHS"


def select_device():
    """``$MNIST_DNN_DEVICE`` when set (``cpu``, ``cuda`` or ``cuda:N``), else CUDA when PyTorch sees a GPU, else CPU.

    Checks every MNIST_DNN_* variable first, so that a bad one stops a stage before it does any work.
    """
    numerics.mode()
    cuda_graphs_requested()
    requested = os.environ.get(DEVICE_ENV)
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    found = DEVICE.fullmatch(requested)
    if not found:
        raise UserError(f"{DEVICE_ENV}={requested[:80]!r}: not a device this project runs on (cpu, cuda or cuda:N)")
    if requested != "cpu":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(found["index"] or 0) >= count:
            raise UserError(f"{DEVICE_ENV}={requested}: no such device here ({count} CUDA devices)")
    return torch.device(requested)


def cuda_graphs_requested():
    """Whether ``$MNIST_DNN_CUDA_GRAPHS`` is ``1``: CUDA graphs stay opt-in until the GPU check has passed on a GPU."""
    return environment_choice(CUDA_GRAPHS_ENV, ("0", "1"), "0") == "1"
