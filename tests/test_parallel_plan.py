"""What `mnist-dnn repro` schedules, read from this project's dvc.yaml, how it reports a failed stage, and how it
hands dvc.lock entries on; no Ray."""

import io
import tarfile

from dvc.repo import Repo

from helpers import REPO
from mnist_dnn.parallel import error_line, lock_entries, plan, snapshot, update_lock


def test_every_stage_waits_for_the_stages_it_reads_from_and_comes_after_them():
    tasks, last = plan(REPO, [])
    with Repo(str(REPO)) as repo:
        every = {stage.addressing for stage in repo.index.stages}
    assert {name for name, _ in tasks} | set(last) == every
    seen = set()
    for name, upstream in tasks:
        assert upstream <= seen, name
        seen.add(name)
    assert tasks[0] == ("download", set()) and ("prepare", {"download"}) in tasks
    assert dict(tasks)["evaluate@dnn"] == {"prepare", "train@dnn"}


def test_the_stages_whose_outputs_the_run_cache_keeps_nothing_of_are_left_to_the_last_dvc_repro():
    _, last = plan(REPO, [])
    assert set(last) == {"summarize", "compare_optimizers", "report"}


def test_targets_take_their_upstream_stages_only():
    tasks, last = plan(REPO, ["evaluate@softmax"])
    assert [name for name, _ in tasks] == ["download", "prepare", "train@softmax", "evaluate@softmax"]
    assert last == []
    assert [name for name, _ in plan(REPO, ["optimizer_study@*"])[0]][2:] == [
        name for name, _ in plan(REPO, [])[0] if name.startswith("optimizer_study@")]


def test_a_failed_stage_says_why_in_its_own_error_line_else_in_dvcs():
    output = "Running stage 'train@softmax':\n> python stages/train.py softmax\nerror: softmax: training diverged\n" \
             "ERROR: failed to reproduce 'train@softmax': failed to run: python stages/train.py, exited with 2\n"
    assert error_line(output, 255) == "softmax: training diverged"
    assert error_line(output.replace("error: softmax", "softmax"), 255).startswith("failed to reproduce 'train@")
    assert error_line("", 9) == "exit status 9"
    assert len(error_line("error: " + "x" * 5000, 1)) == 300


def test_the_snapshot_is_the_files_git_sees_uncommitted_ones_included():
    with tarfile.open(fileobj=io.BytesIO(snapshot(REPO))) as tar:
        names = set(tar.getnames())
    assert {"dvc.yaml", "params.yaml", "dvc.lock", "src/mnist_dnn/parallel.py", ".dvc/config"} <= names
    assert not any(name.startswith((".git/", ".venv/", "data/", "models/", ".dvc/cache")) for name in names)


LOCK = """schema: '2.0'
stages:
  prepare:
    cmd: python stages/prepare.py
    outs:
    - path: data/prepared
      md5: aaa.dir
  train@softmax:
    cmd: python stages/train.py softmax
    outs:
    - path: models/softmax.safetensors
      md5: made-elsewhere
  evaluate@softmax:
    cmd: python stages/evaluate.py softmax
"""


def test_a_lock_takes_the_copies_entries_in_place_of_other_ones_and_no_stage_it_lacks(tmp_path):
    path = tmp_path / "dvc.lock"
    path.write_text(LOCK)
    ours = {"cmd": "python stages/train.py softmax", "outs": [{"path": "models/softmax.safetensors", "md5": "here"}]}
    before = lock_entries(path)
    update_lock(path, {"prepare": before["prepare"], "train@softmax": ours, "train@dnn": ours})
    entries = lock_entries(path)
    assert list(entries) == ["prepare", "train@softmax", "evaluate@softmax"]  # dvc.lock's order, no new stage
    assert entries == {**before, "train@softmax": ours}
    assert path.read_text().startswith("schema: '2.0'\nstages:\n  prepare:\n")
    assert [p.name for p in tmp_path.iterdir()] == ["dvc.lock"]


def test_a_lock_with_the_same_entries_or_none_is_not_written(tmp_path):
    path = tmp_path / "dvc.lock"
    path.write_text(LOCK)
    update_lock(path, lock_entries(path))
    assert path.read_text() == LOCK
    update_lock(tmp_path / "none.lock", {"prepare": {}})
    assert not (tmp_path / "none.lock").exists()
