"""CPU numerics: the portable setting that gives the same float bits on every x86-64 CPU with AVX2, set before torch
is imported, and the fingerprint of the numerics a run actually used."""

import os
import re
from pathlib import Path

from mnist_dnn.errors import UserError, environment_choice

MODE_ENV = "MNIST_DNN_NUMERICS"
MODES = ("portable", "native")
# ATen's kernels and MKL's GEMM branch pinned to AVX2 (benchmarks/numerics.py measures what each costs and gives)
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
CPU_FLAGS = ("avx2", "avx512f", "amx_tile")  # the flags that decide which kernels a CPU can run


def mode():
    """``$MNIST_DNN_NUMERICS``: ``portable`` (the default) or ``native`` (PyTorch's own choice for this CPU)."""
    return environment_choice(MODE_ENV, MODES, "portable")


def apply():
    """In portable mode, set PORTABLE's variables that the user has not set; must run before torch is imported."""
    try:
        portable = mode() == "portable"
    except UserError:  # device.select_device reports it, in a stage rather than at import
        return
    if portable:
        for name, value in PORTABLE.items():
            os.environ.setdefault(name, value)


def cpu():
    """The CPU's model name and which of CPU_FLAGS it has, from /proc/cpuinfo."""
    name, flags = "unknown", set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return name, [flag for flag in CPU_FLAGS if flag in flags]


def _library_version(pattern):
    import torch

    found = re.search(pattern, torch.__config__.show())
    return found.group(1) if found else "none"


def fingerprint(device="cpu"):
    """What decides the float bits of a run on ``device``: versions, kernels, threads, the processor."""
    import torch

    device = torch.device(device)
    numerics = {"torch": torch.__version__, "device": device.type}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return numerics | {"cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(device),
                           "cuda_capability": f"{major}.{minor}"}
    name, flags = cpu()
    return numerics | {
        "mode": mode(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": _library_version(r"Math Kernel Library Version ([\d.]+)"),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "auto"),
        "onednn": _library_version(r"MKL-DNN (v\S+)"),
        "threads": torch.get_num_threads(),
        "cpu": name,
        "cpu_flags": flags,
    }


def deciding(fingerprint):
    """The part of a ``fingerprint`` that decides the float bits: in portable mode on the CPU, not the processor nor
    the thread count (benchmarks/numerics.py measures that they do not count); otherwise all of it."""
    if fingerprint.get("mode") == "portable" and fingerprint.get("aten_cpu_capability") == "AVX2":
        return {key: value for key, value in fingerprint.items() if key not in ("cpu", "cpu_flags", "threads")}
    return dict(fingerprint)


def recorded(device):
    """What a model trained on ``device`` records of its numerics: the deciding part of this run's fingerprint."""
    return deciding(fingerprint(device))


def describe(numerics):
    """A fingerprint in one line, e.g. ``CPU, portable: torch 2.14.1, ATen AVX2, MKL 2024.2 (CBWR AVX2), …``."""
    if numerics.get("device") == "cuda":
        return f"CUDA {numerics['cuda']} on {numerics['gpu']} (capability {numerics['cuda_capability']}), " \
               f"torch {numerics['torch']}"
    text = (f"CPU, {numerics.get('mode', '?')} numerics: torch {numerics.get('torch', '?')}, ATen "
            f"{numerics.get('aten_cpu_capability', '?')}, MKL {numerics.get('mkl', '?')} (CBWR "
            f"{numerics.get('mkl_cbwr', '?')}), oneDNN {numerics.get('onednn', '?')}")
    if "cpu" in numerics:
        return text + f", {numerics['threads']} threads on {numerics['cpu']} ({' '.join(numerics['cpu_flags'])})"
    return text + ": the same bits on any x86-64 CPU with AVX2, any thread count"
