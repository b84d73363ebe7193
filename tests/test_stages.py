"""Stage scripts on bad input: one line on stderr, a non-zero exit, nothing written. Tiny data made here."""

import shutil
from types import SimpleNamespace

import pytest
import torch

import helpers
from helpers import DELETE, REPO, edit_yaml
from mnist_dnn import paths
from mnist_dnn.lecture import data


@pytest.fixture
def workspace(tmp_path):
    """A working folder with the real params.yaml (1 epoch) and tiny prepared splits of random images."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    edit_yaml(tmp_path / "params.yaml", {"train.epochs": 1})
    g = torch.Generator().manual_seed(0)
    (tmp_path / "data/prepared").mkdir(parents=True)
    for split, n in {"train": 200, "val": 50, "test": 50}.items():
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=g)
        data.save_split(tmp_path / f"data/prepared/{split}.safetensors", images, labels)
    return tmp_path


@pytest.fixture
def run_stage(workspace, monkeypatch, capsys):
    """Run ``<stage>@<variant>`` in ``workspace`` as `python` would, with dvc.yaml's command for softmax made out for
    ``variant`` (a variant params.yaml may lack); its exit code, stdout and stderr."""

    def run(stage, variant):
        returncode = helpers.run_stage(monkeypatch, workspace, f"{stage}@softmax", variant)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=returncode, stdout=out, stderr=err)

    return run


def written(workspace):
    """Files under the models' and metrics' folders."""
    return sorted(
        str(p.relative_to(workspace)) for d in (paths.MODELS, "metrics") for p in (workspace / d).rglob("*")
        if p.is_file()
    )


def test_a_good_stage_run_writes_its_outputs(workspace, run_stage):
    result = run_stage("train", "softmax")
    assert result.returncode == 0, result.stderr
    assert {str(paths.model_file("softmax")), "metrics/train/softmax/metrics.json"} <= set(written(workspace))


def test_evaluate_refuses_the_model_file_of_another_variant(workspace, run_stage):
    assert run_stage("train", "softmax").returncode == 0
    (workspace / paths.model_file("nn_xavier")).write_bytes((workspace / paths.model_file("softmax")).read_bytes())
    result = run_stage("evaluate", "nn_xavier")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {paths.model_file('nn_xavier')}: holds softmax (784→10, normal, normal biases, dropout 0), not "
        "nn_xavier as params.yaml has it (784→256→256→10, xavier_uniform, normal biases, dropout 0); run"
        " `dvc repro --force train@nn_xavier`\n"
    )
    assert not (workspace / "metrics/eval").exists()


BAD_INPUTS = {
    "keep_prob out of range": (
        ("keep_prob", 1.5), ("train", "dnn_dropout"), "params.yaml: keep_prob: Input should be less than or equal to 1"
    ),
    "missing key": (("optimizer.lr", DELETE), ("train", "softmax"), "params.yaml: optimizer.lr: Field required"),
    "unknown optimizer": (
        ("optimizer.name", "adamw2"), ("train", "softmax"), "params.yaml: optimizer.name: unknown optimizer 'adamw2'"
    ),
    "wrong type": (("train.epochs", "ten"), ("train", "softmax"), "params.yaml: train.epochs: Input should be a valid"),
    "unknown variant": (None, ("train", "nope"), "unknown variant 'nope' (params.yaml variants: softmax, "),
    "diverging training": (
        ("optimizer.lr", 1e30), ("train", "nn_xavier"), "nn_xavier: training diverged in epoch 1 (mean train loss nan)"
    ),
    "unknown variant to evaluate": (None, ("evaluate", "nope"), "unknown variant 'nope'"),
    "no trained model": (None, ("evaluate", "softmax"), f"{paths.model_file('softmax')}: no such model file"),
}


@pytest.mark.parametrize("edit, command, expected", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_stops_the_stage_with_one_line_and_writes_nothing(workspace, run_stage, edit, command, expected):
    if edit:
        edit_yaml(workspace / "params.yaml", dict([edit]))
    result = run_stage(*command)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {expected}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert written(workspace) == []


@pytest.mark.parametrize("split", ["train", "val"])
def test_corrupt_prepared_data_stops_training(workspace, run_stage, split):
    path = workspace / f"data/prepared/{split}.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    result = run_stage("train", "softmax")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: data/prepared/{split}.safetensors: cannot load data split")
    assert result.stderr.count("\n") == 1
    assert written(workspace) == []


@pytest.mark.parametrize("images, labels", [
    (torch.zeros(10, 5, 5, dtype=torch.uint8), torch.zeros(10, dtype=torch.uint8)),
    (torch.zeros(10, 28, 28, dtype=torch.uint8), torch.full((10,), 12, dtype=torch.uint8)),
    (torch.zeros(10, 28, 28, dtype=torch.uint8), torch.zeros(9, dtype=torch.uint8)),
    (torch.zeros(10, 28, 28), torch.zeros(10, dtype=torch.uint8)),
], ids=["5x5", "label_12", "a_label_short", "float_images"])
def test_a_data_split_of_the_wrong_shape_stops_training(workspace, run_stage, images, labels):
    data.save_split(workspace / "data/prepared/val.safetensors", images, labels)
    result = run_stage("train", "softmax")
    assert result.returncode == 2
    assert result.stderr == ("error: data/prepared/val.safetensors: not a data split (uint8 images N×28×28, N "
                             "labels 0–9); run `dvc repro prepare`\n")
    assert written(workspace) == []


def write_idx(path, tensor):
    """``tensor`` (uint8) as the IDX file ``path``, as MNIST's files are laid out."""
    header = bytes([0, 0, 0x08, tensor.dim()]) + b"".join(n.to_bytes(4, "big") for n in tensor.shape)
    path.write_bytes(header + tensor.numpy().tobytes())


@pytest.mark.parametrize("limit, sizes", [(None, {"train": 17, "val": 3, "test": 8}),
                                          (12, {"train": 9, "val": 3, "test": 8}),
                                          (5, {"train": 2, "val": 3, "test": 5})])
def test_prepare_keeps_the_first_limit_training_and_test_images(workspace, monkeypatch, limit, sizes):
    raw = workspace / "data/raw/MNIST/raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name, n in {"train": 20, "t10k": 8}.items():
        write_idx(raw / f"{name}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g))
        write_idx(raw / f"{name}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8) % 10)
    edit_yaml(workspace / "params.yaml", {"data.val_size": 3, "data.limit": limit})
    assert helpers.run_stage(monkeypatch, workspace, "prepare") == 0
    for split, n in sizes.items():
        images, labels = data.load_split(workspace / f"data/prepared/{split}.safetensors")
        assert len(images) == len(labels) == n, split
    test_labels = data.load_split(workspace / "data/prepared/test.safetensors")[1]
    assert test_labels.tolist() == [i % 10 for i in range(sizes["test"])]  # the first ones, in order
    train_and_val = [data.load_split(workspace / f"data/prepared/{s}.safetensors")[1] for s in ("train", "val")]
    assert sorted(torch.cat(train_and_val).tolist()) == sorted(i % 10 for i in range(limit or 20))
