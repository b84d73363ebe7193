"""Portable CPU numerics: set before torch is imported, recorded as a fingerprint, and the same bits under any
thread count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_dnn.stage import numerics

PROBE = """
import hashlib, json, sys
import mnist_dnn  # sets the portable numerics before torch is imported
import torch
from mnist_dnn.lecture import training
from mnist_dnn.stage import numerics
from mnist_dnn.lecture.config import TrainParams, OptimizerParams
from mnist_dnn.lecture.models import ModelSpec

g = torch.Generator().manual_seed(0)
inputs, targets = torch.rand(2000, 784, generator=g), torch.randint(0, 10, (2000,), generator=g)
spec = ModelSpec(variant="probe", hidden=(256, 256), init="xavier_uniform", bias_init="normal", dropout_p=0.3)
hp = TrainParams(epochs=1, batch_size=100, seed=7)
model, _ = training.train(spec, hp, OptimizerParams(name="adam", lr=0.001), ((inputs, targets), None))
digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in model.state_dict().values())).hexdigest()
print(json.dumps({"sha256": digest, "fingerprint": numerics.fingerprint("cpu")}))
"""


def probe(**env):
    """Train a small model in a fresh process with ``env`` (None removes a variable); its hash and fingerprint."""
    full = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")}
    full.pop(numerics.MODE_ENV, None)
    full |= env
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True)
    assert out.stdout.count("\n") == 1, out.stdout  # the JSON line alone: reading MKL's branch prints nothing
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def portable():
    """The probe under the defaults: the portable numerics on every core."""
    return probe()


def test_importing_the_package_sets_the_portable_numerics_before_torch(portable):
    assert portable["fingerprint"]["mode"] == "portable"
    assert portable["fingerprint"]["aten_cpu_capability"] == "AVX2"
    assert portable["fingerprint"]["mkl_cbwr"] == "AVX2,STRICT"


@pytest.mark.slow
def test_native_mode_leaves_the_kernels_to_pytorch():
    result = probe(MNIST_DNN_NUMERICS="native")
    assert result["fingerprint"]["mode"] == "native"
    assert result["fingerprint"]["mkl_cbwr"] == "auto"
    assert result["fingerprint"]["mkl_branch"] == "OFF"  # MKL's own word: no reproducibility branch in force


def test_the_fingerprint_names_the_vendor_and_the_branch_mkl_runs(portable):
    fingerprint = portable["fingerprint"]
    vendor = fingerprint["cpu_vendor"]
    assert vendor in Path("/proc/cpuinfo").read_text()
    # MKL runs its AVX2 branch on Intel CPUs only; on any other vendor it replaces it by AUTO (its documentation)
    if vendor == "GenuineIntel":
        assert fingerprint["mkl_branch"].endswith(",STRICT")
    else:
        assert fingerprint["mkl_branch"] == "AUTO,STRICT"


@pytest.mark.slow
def test_a_variable_the_user_set_wins():
    assert probe(ATEN_CPU_CAPABILITY="default")["fingerprint"]["aten_cpu_capability"] == "DEFAULT"


@pytest.mark.slow
def test_portable_numerics_give_the_same_bits_under_any_thread_count(portable):
    hashes = {str(n): probe(OMP_NUM_THREADS=str(n))["sha256"] for n in (1, 4)}
    hashes[f"{portable['fingerprint']['threads']} (every core)"] = portable["sha256"]
    assert len(set(hashes.values())) == 1, hashes


MACHINE = {"cpu_vendor": "GenuineIntel", "cpu": "x", "cpu_flags": ["avx2"], "threads": 2}


@pytest.mark.parametrize("fingerprint, kept", [
    ({"mode": "portable", "aten_cpu_capability": "AVX2"} | MACHINE, {"mode", "cpu_vendor"}),
    ({"mode": "native", "aten_cpu_capability": "AVX512"} | MACHINE, {"mode", *MACHINE}),
    ({"mode": "portable", "aten_cpu_capability": "DEFAULT"} | MACHINE, {"mode", *MACHINE}),
])
def test_only_what_decides_the_bits_is_recorded(fingerprint, kept):
    assert set(numerics.deciding(fingerprint)) - {"aten_cpu_capability"} == kept


def test_a_description_says_where_the_bits_hold(portable):
    fingerprint = portable["fingerprint"]
    vendor = fingerprint["cpu_vendor"]
    assert numerics.describe(numerics.deciding(fingerprint)).endswith(
        f"{vendor}: the same bits on any {vendor} CPU with AVX2, any thread count")
    assert f"{fingerprint['threads']} threads on {fingerprint['cpu']}" in numerics.describe(fingerprint)
