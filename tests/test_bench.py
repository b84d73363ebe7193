import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch

from helpers import DROPOUT_VARIANT, PARAMS, REPO, VARIANTS
from mnist_dnn.lecture import data

spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks/bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def write_idx(path, tensor, magic):
    """``tensor`` (uint8) as an uncompressed IDX file, the form torchvision's MNIST reads."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    path.write_bytes(header + tensor.numpy().tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """Raw MNIST files of 300 training and 100 test images, their prepared splits, and params with 1 epoch."""
    g = torch.Generator().manual_seed(0)
    raw = tmp_path / "raw" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in [("train", 300), ("t10k", 100)]:
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 0x803)
        labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=g)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 0x801)
    images, labels = data.load_mnist(tmp_path / "raw", train=True)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    data.save_split(prepared / "train.safetensors", images[:250], labels[:250])
    data.save_split(prepared / "val.safetensors", images[250:], labels[250:])
    data.save_split(prepared / "test.safetensors", *data.load_mnist(tmp_path / "raw", train=False))
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("  epochs: 15\n", "  epochs: 1\n", 1))
    return tmp_path, params


def test_bench_writes_consistent_figures(tiny_mnist, capsys):
    root, params = tiny_mnist
    out = root / "bench.json"
    argv = ["--params", str(params), "--raw", str(root / "raw"), "--prepared", str(root / "prepared")]
    bench.main([*argv, "--variants", VARIANTS[0], DROPOUT_VARIANT, "--epochs", "2", "--output", str(out)])
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["threads"] == torch.get_num_threads()
    assert result["torch"] == torch.__version__ and result["epochs_timed"] == 2
    assert [row["variant"] for row in result["variants"]] == [VARIANTS[0], DROPOUT_VARIANT]
    for row in result["variants"]:
        n_params = sum(p.numel() for p in PARAMS.model_spec(row["variant"]).build().parameters())
        assert len(row["lecture_epochs_s"]) == len(row["engine_epochs_s"]) == 2
        assert row["lecture_s_per_epoch"] == min(row["lecture_epochs_s"]) > 0
        assert row["engine_s_per_epoch"] == min(row["engine_epochs_s"]) > 0
        assert row["speedup"] == pytest.approx(row["lecture_s_per_epoch"] / row["engine_s_per_epoch"])
        assert row["engine_gflops"] == pytest.approx(6 * n_params * 300 / row["engine_s_per_epoch"] / 1e9)
        assert row["gemm_fraction"] == pytest.approx(row["engine_gflops"] / result["gemm_gflops"])
        matmul_gflops = 6 * n_params * 300 / row["matmul_s"] / 1e9
        assert row["matmul_gemm_fraction"] == pytest.approx(matmul_gflops / result["gemm_gflops"])
        assert 0 < row["matmul_s"] and 0 < row["optimizer_s"]
        assert row["matmul_s"] + row["optimizer_s"] + row["random_s"] < row["profiled_epoch_s"]
    first, dropout = result["variants"]
    assert first["random_s"] == 0 < dropout["random_s"]  # only dropout draws random numbers
    assert result["table_epochs"] == 1 and math.isfinite(result["table_seconds"]) and result["table_seconds"] > 0
    assert list(result["table_test_accuracy"]) == VARIANTS
    assert all(accuracy * 100 == round(accuracy * 100) for accuracy in result["table_test_accuracy"].values())
    printed = capsys.readouterr().out
    assert "fp32 GEMM 2048x2048" in printed and f"whole table ({len(VARIANTS)} variants x 1 epochs)" in printed
    assert "where a profiled engine epoch's time goes" in printed


def test_gemm_rate_counts_two_flops_per_multiply_add(monkeypatch):
    clock = iter(range(100))  # every timed product takes exactly one fake second
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    assert bench.gemm_rate("cpu", n=64, repeats=3) == 2 * 64**3


# Python as if these were not installed: importing one raises ModuleNotFoundError, importlib.util.find_spec gives None.
WITHOUT_THE_DVC_STACK = """
import runpy, sys

sys.modules.update(dict.fromkeys(["dvc", "dvclive", "pandas", "matplotlib"]))
import mnist_dnn.lecture.config, mnist_dnn.lecture.data, mnist_dnn.lecture.training  # noqa: E401
import mnist_dnn.stage.device, mnist_dnn.lecture.download  # noqa: E401
sys.argv = ["benchmarks/bench.py", *sys.argv[1:]]
runpy.run_path("benchmarks/bench.py", run_name="__main__")
"""


@pytest.mark.slow
def test_the_engine_and_the_bench_run_without_dvc_dvclive_pandas_or_matplotlib(tiny_mnist):
    root, params = tiny_mnist
    argv = ["--params", str(params), "--raw", str(root / "raw"), "--prepared", str(root / "prepared")]
    argv += ["--variants", "softmax", "--epochs", "1", "--output", str(root / "bench.json")]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_DVC_STACK, *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "bench.json").read_text())["table_test_accuracy"].keys() == set(VARIANTS)


def test_the_blocker_blocks():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_DVC_STACK.replace("import mnist_dnn", "import pandas, mnist_dnn")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1 and "ModuleNotFoundError: import of pandas halted" in done.stderr


def test_format_table_aligns_columns_and_rounds_numbers():
    rows = [{"variant": "softmax", "s": 0.12345, "n": 7}, {"variant": "dnn", "s": 12.5, "n": 1234}]
    assert bench.format_table(rows, ["variant", "s", "n"]).splitlines() == [
        "variant      s    n",
        "softmax  0.123    7",
        "    dnn 12.500 1234",
    ]


numerics_spec = importlib.util.spec_from_file_location("bench_numerics", REPO / "benchmarks/numerics.py")
bench_numerics = importlib.util.module_from_spec(numerics_spec)
numerics_spec.loader.exec_module(bench_numerics)


@pytest.mark.parametrize("size", [64, 100, 1000])
def test_the_sliced_linear_layer_computes_what_nn_linear_does(size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 784, generator=g, requires_grad=True)
    weight = torch.randn(10, 784, generator=g, requires_grad=True)
    bias = torch.randn(10, generator=g, requires_grad=True)
    upstream = torch.randn(100, 10, generator=g)
    sliced = bench_numerics.sliced_linear(size)(x, weight, bias)
    plain = torch.nn.functional.linear(x, weight, bias)
    torch.testing.assert_close(sliced, plain, rtol=1e-5, atol=1e-4)
    grads = torch.autograd.grad(sliced, (x, weight, bias), upstream)
    expected = torch.autograd.grad(plain, (x, weight, bias), upstream)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
