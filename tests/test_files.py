"""Atomic outputs: a stage's outputs appear together, each whole, or not at all."""

import pytest

from mnist_dnn.stage.files import atomic_outputs


def test_outputs_appear_only_once_all_are_written(tmp_path):
    model, log = tmp_path / "weights/m.bin", tmp_path / "logs/m"
    with atomic_outputs(model, log) as (new_model, new_log):
        new_log.mkdir()
        (new_log / "metrics.json").write_text("{}")
        new_model.write_bytes(b"weights")
        assert not model.exists() and not log.exists()
    assert model.read_bytes() == b"weights" and (log / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["logs", "m", "m.bin", "metrics.json", "weights"]


def test_a_failure_after_one_output_is_written_publishes_none(tmp_path):
    model, log = tmp_path / "m.bin", tmp_path / "log"
    model.write_bytes(b"old weights")
    log.mkdir()
    (log / "metrics.json").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_outputs(log, model) as (new_log, new_model):
            new_log.mkdir()
            (new_log / "metrics.json").write_text("new")
            raise OSError(28, "disk full")  # as saving the model would, on a full disk
    assert model.read_bytes() == b"old weights" and (log / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "m.bin"]  # no temporary folders left


def test_an_output_the_block_did_not_write_publishes_none(tmp_path):
    with pytest.raises(FileNotFoundError, match="b.txt"):
        with atomic_outputs(tmp_path / "a.txt", tmp_path / "b.txt") as (a, _):
            a.write_text("a")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_output_replaces_the_old_one_whole(tmp_path):
    log = tmp_path / "log"
    (log / "plots").mkdir(parents=True)
    (log / "plots/old.tsv").write_text("old")
    with atomic_outputs(log) as (new_log,):
        new_log.mkdir()
        (new_log / "new.tsv").write_text("new")
    assert [p.name for p in log.rglob("*")] == ["new.tsv"]
