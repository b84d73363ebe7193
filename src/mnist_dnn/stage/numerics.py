"""CPU numerics: the portable setting that gives the same float bits on every x86-64 CPU with AVX2 of one vendor,
under any thread count, set before torch is imported, and the fingerprint of the numerics a run actually used."""

import os
import re
import sys
import tempfile
from pathlib import Path

from mnist_dnn.errors import UserError, environment_choice

MODE_ENV = "MNIST_DNN_NUMERICS"
MODES = ("portable", "native")
# ATen's kernels pinned to AVX2, MKL's GEMMs to its strict AVX2 branch, which Intel CPUs run and AMD ones replace by
# the strict AUTO branch (docs/reproducibility.md; benchmarks/numerics.py measures what each setting costs and gives)
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}
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
    """The CPU's vendor (e.g. ``GenuineIntel``, ``AuthenticAMD``), model name and which of CPU_FLAGS it has, from
    /proc/cpuinfo."""
    fields = {}
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if key.strip() == "flags":
            break
    flags = set(fields.get("flags", "").split())
    return fields.get("vendor_id", "unknown"), fields.get("model name", "unknown"), [f for f in CPU_FLAGS if f in flags]


def mkl_branch():
    """The code branch MKL says it runs (``CNR:`` in its verbose line of one small product), e.g. ``AVX2,STRICT`` on an
    Intel CPU and ``AUTO,STRICT`` on an AMD one for MKL_CBWR=AVX2,STRICT; ``none`` without MKL."""
    import torch

    if not torch.backends.mkl.is_available():
        return "none"
    sys.stdout.flush()
    saved = os.dup(1)  # MKL prints its verbose lines on file descriptor 1
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 1)
        try:
            with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                torch.ones(8, 8) @ torch.ones(8, 8)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        captured.seek(0)
        found = re.search(rb"CNR:(\S+)", captured.read())
    return found.group(1).decode() if found else "none"


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
    vendor, name, flags = cpu()
    return numerics | {
        "mode": mode(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": _library_version(r"Math Kernel Library Version ([\d.]+)"),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "auto"),
        "mkl_branch": mkl_branch(),
        "onednn": _library_version(r"MKL-DNN (v\S+)"),
        "cpu_vendor": vendor,
        "threads": torch.get_num_threads(),
        "cpu": name,
        "cpu_flags": flags,
    }


def deciding(fingerprint):
    """The part of a ``fingerprint`` that decides the float bits: in portable mode on the CPU, the vendor but not the
    processor's model nor the thread count (benchmarks/numerics.py measures that they do not count); otherwise all."""
    if fingerprint.get("mode") == "portable" and fingerprint.get("aten_cpu_capability") == "AVX2":
        return {key: value for key, value in fingerprint.items() if key not in ("cpu", "cpu_flags", "threads")}
    return dict(fingerprint)


def recorded(device):
    """What a model trained on ``device`` records of its numerics: the deciding part of this run's fingerprint."""
    return deciding(fingerprint(device))


def describe(numerics):
    """A fingerprint in one line, e.g. ``CPU, portable numerics: torch 2.14.1, ATen AVX2, MKL 2024.2 (CBWR AVX2,STRICT,
    ran AUTO,STRICT), oneDNN v3.12.0, AuthenticAMD: …``."""
    if numerics.get("device") == "cuda":
        return f"CUDA {numerics['cuda']} on {numerics['gpu']} (capability {numerics['cuda_capability']}), " \
               f"torch {numerics['torch']}"
    text = (f"CPU, {numerics.get('mode', '?')} numerics: torch {numerics.get('torch', '?')}, ATen "
            f"{numerics.get('aten_cpu_capability', '?')}, MKL {numerics.get('mkl', '?')} (CBWR "
            f"{numerics.get('mkl_cbwr', '?')}, ran {numerics.get('mkl_branch', '?')}), oneDNN "
            f"{numerics.get('onednn', '?')}, {numerics.get('cpu_vendor', '?')}")
    if "cpu" in numerics:
        return text + f", {numerics['threads']} threads on {numerics['cpu']} ({' '.join(numerics['cpu_flags'])})"
    return text + f": the same bits on any {numerics.get('cpu_vendor', '?')} CPU with AVX2, any thread count"
