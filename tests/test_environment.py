"""The environment a stage meets: MNIST_DNN_* variables, an ASCII-only terminal, a mirror folder that is a symlink
loop. Each bad one is one line and exit status 2, before any work."""

import os
import subprocess
import sys

import pytest
import torch

from helpers import TIME_CAP
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.download import MIRROR_ENV, mirror_urls
from mnist_dnn.stage import device, numerics


@pytest.mark.parametrize("value, expected", [("cpu", "cpu"), ("", "cuda" if torch.cuda.is_available() else "cpu")])
def test_a_device_this_project_runs_on_is_selected(monkeypatch, value, expected):
    monkeypatch.setenv(device.DEVICE_ENV, value)
    assert device.select_device() == torch.device(expected)


@pytest.mark.parametrize("value, message", [
    ("meta", "MNIST_DNN_DEVICE='meta': not a device this project runs on (cpu, cuda or cuda:N)"),
    ("mps", "MNIST_DNN_DEVICE='mps': not a device this project runs on"),
    ("cpu:0", "MNIST_DNN_DEVICE='cpu:0': not a device this project runs on"),
    ("\x1b[31mgpu", "MNIST_DNN_DEVICE='\\x1b[31mgpu': not a device"),
    (f"cuda:{torch.cuda.device_count()}", f"MNIST_DNN_DEVICE=cuda:{torch.cuda.device_count()}: no such device here "
                                          f"({torch.cuda.device_count()} CUDA devices)"),
])
def test_a_device_that_is_not_one_or_not_there_is_refused(monkeypatch, value, message):
    monkeypatch.setenv(device.DEVICE_ENV, value)
    with pytest.raises(UserError) as info:
        device.select_device()
    assert str(info.value).startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_there_is_none(monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "cuda")
    with pytest.raises(UserError, match=r"^MNIST_DNN_DEVICE=cuda: no such device here \(0 CUDA devices\)$"):
        device.select_device()


@pytest.mark.parametrize("name, value", [
    (device.CUDA_GRAPHS_ENV, "yes"), (device.CUDA_GRAPHS_ENV, "2"), (numerics.MODE_ENV, "fast"),
    (numerics.MODE_ENV, "Portable"),
])
def test_a_switch_of_another_value_is_refused_when_a_stage_selects_its_device(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=rf"^{name}='{value}': not one of .* \(or unset\)$"):
        device.select_device()


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("0", False), ("1", True)])
def test_cuda_graphs_are_requested_by_1_only(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(device.CUDA_GRAPHS_ENV, raising=False)
    else:
        monkeypatch.setenv(device.CUDA_GRAPHS_ENV, value)
    assert device.cuda_graphs_requested() is expected


def run(code, **env):
    """``python -c code`` with ``env`` added to the environment; its CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIME_CAP,
                          env=os.environ | env)


def test_a_bad_numerics_mode_does_not_break_the_import():
    result = run("import mnist_dnn.lecture.models", MNIST_DNN_NUMERICS="fast")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("code, status, stdout, stderr", [
    ("run_stage(lambda: print('784→10 ±'))", 0, "784\\u219210 \\xb1\n", ""),
    ("run_stage(lambda: (_ for _ in ()).throw(UserError('a → b')))", 2, "", "error: a \\u2192 b\n"),
])
def test_an_ascii_terminal_gets_escapes_not_a_traceback(code, status, stdout, stderr):
    imports = "from mnist_dnn.errors import UserError\nfrom mnist_dnn.stage.runtime import run_stage\n"
    result = run(imports + code, PYTHONIOENCODING="ascii")
    assert (result.returncode, result.stdout, result.stderr) == (status, stdout, stderr)


def test_a_mirror_folder_that_is_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "mirror"
    loop.symlink_to(loop)
    with pytest.raises(UserError, match=rf"^{MIRROR_ENV}={loop}: .*[Ss]ymlink loop"):
        mirror_urls(str(loop))
