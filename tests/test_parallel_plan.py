"""What `mnist-dnn repro` schedules, read from this project's dvc.yaml (also with params set by -S), how it reports a
failed stage, and how it hands dvc.lock entries on; no Ray."""

import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from dvc.repo import Repo
from ruamel.yaml import YAML

from helpers import REPO
from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.tools import parallel
from mnist_dnn.tools.parallel import (
    Options,
    check_address,
    error_line,
    lock_entries,
    plan,
    repro,
    set_params,
    snapshot,
    up_to_date,
    update_lock,
)


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
    assert {"dvc.yaml", "params.yaml", "dvc.lock", "src/mnist_dnn/tools/parallel.py", ".dvc/config"} <= names
    assert not any(name.startswith((".git/", ".venv/", "data/", f"{paths.MODELS}/", ".dvc/cache")) for name in names)


LOCK = f"""schema: '2.0'
stages:
  prepare:
    cmd: python stages/prepare.py
    outs:
    - path: data/prepared
      md5: aaa.dir
  train@softmax:
    cmd: python stages/train.py softmax
    outs:
    - path: {paths.model_file("softmax")}
      md5: made-elsewhere
  evaluate@softmax:
    cmd: python stages/evaluate.py softmax
"""


def test_a_lock_takes_the_copies_entries_in_place_of_other_ones_and_no_stage_it_lacks(tmp_path):
    path = tmp_path / "dvc.lock"
    path.write_text(LOCK)
    ours = {"cmd": "python stages/train.py softmax", "outs": [{"path": str(paths.model_file("softmax")),
                                                                 "md5": "here"}]}
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


def test_set_params_sets_nested_keys_and_lists_as_dvc_exp_run_does_and_nothing_else(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# the comment stays\ntrain:\n  epochs: 15  # and this one\n  seed: 777\nextra_seeds: []\n")
    edited = set_params(path, ["train.epochs=2", "extra_seeds=[1, 2]"]).decode()
    assert YAML(typ="safe").load(edited) == {"train": {"epochs": 2, "seed": 777}, "extra_seeds": [1, 2]}
    assert "# the comment stays" in edited and "# and this one" in edited
    assert path.read_text().startswith("# the comment stays\ntrain:\n  epochs: 15")  # the file itself unchanged


@pytest.mark.parametrize("assignments, expected", [
    (["params.yaml:train.seed=1"], {"train": {"epochs": 15, "seed": 1}, "keep_prob": 0.7}),
    (["+train.tf32=true"], {"train": {"epochs": 15, "seed": 777, "tf32": True}, "keep_prob": 0.7}),
    (["~keep_prob"], {"train": {"epochs": 15, "seed": 777}}),
    (["keep_prob=0.5", "keep_prob=0.6"], {"train": {"epochs": 15, "seed": 777}, "keep_prob": 0.6}),
])
def test_set_params_takes_every_form_dvc_exp_run_s_takes(tmp_path, assignments, expected):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 15\n  seed: 777\nkeep_prob: 0.7\n")
    assert YAML(typ="safe").load(set_params(path, assignments)) == expected


@pytest.mark.parametrize("assignment, says", [
    ("epochs=2", "-S epochs=2: Could not override 'epochs'. To append to your config use +epochs=2"),
    ("train.epochs.x=2", "-S train.epochs.x=2: Could not override 'train.epochs.x'."),
    ("train.epochs", "-S train.epochs: Error parsing override 'train.epochs'"),
    ("extra_seeds=[1, 2", "-S extra_seeds=[1, 2: no viable alternative at input '[1, 2'"),
    ("other.yaml:x=1", "-S other.yaml:…: only params.yaml can be set here"),
    ("extra_seeds=" + "[" * 1900 + "]" * 1900, "…: a value nested too deeply"),
    ("extra_seeds=" + "[" * 3000 + "]" * 3000, "…: 6,012 characters, over the 4,000 allowed"),
])
def test_set_params_refuses_a_key_params_yaml_lacks_or_a_value_that_is_not_yaml(tmp_path, assignment, says):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 15\nextra_seeds: []\n")
    with pytest.raises(UserError) as refused:
        set_params(path, [assignment])
    assert says in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("assignment, says", [
    ("keep_prob=1.5", "params.yaml with -S keep_prob=1.5: keep_prob: "),
    ("+train.bogus=1", "params.yaml with -S +train.bogus=1: train.bogus: "),
])
def test_repro_refuses_params_the_stages_would_refuse_before_running_anything(assignment, says, capsys):
    with pytest.raises(UserError) as refused:
        repro(["train@dnn"], Options(dry=True), params=[assignment], root=REPO)
    assert str(refused.value).startswith(says) and "\n" not in str(refused.value)
    assert capsys.readouterr().out == ""


def test_with_params_set_the_plan_has_the_stages_they_make_and_the_workspace_is_left_alone(capsys):
    before = (REPO / "params.yaml").read_bytes()
    repro(["seed@*"], Options(dry=True), params=["extra_seeds=[3]"], root=REPO)
    printed = capsys.readouterr().out.splitlines()
    with Repo(str(REPO)) as project:
        variants = [stage.addressing.split("@")[1] for stage in project.stage.collect("train@*", glob=True)]
    assert printed[:2] == ["download  (after nothing)", "prepare  (after download)"]
    assert sorted(printed[2:-1]) == sorted(f"seed@{variant}-3  (after prepare)" for variant in variants)
    assert printed[-1].startswith("then `dvc exp run -S 'extra_seeds=[3]'`: nothing to run")
    assert (REPO / "params.yaml").read_bytes() == before
    assert not any((REPO / ".dvc/tmp/repro").glob("plan.*"))


def test_a_workspace_another_dvc_command_holds_is_one_line(tmp_path):
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > hi.txt\n    outs: [hi.txt]\n")
    hold = "from dvc.repo import Repo; repo = Repo('.'); repo.lock.lock(); print('held', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", hold], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=r"^dvc status: .*lock"):
            up_to_date(tmp_path, [("hello", set())])
    finally:
        holder.communicate("\n", timeout=30)
    assert up_to_date(tmp_path, [("hello", set())]) == set()  # hi.txt is missing: the stage is not up to date


@pytest.mark.parametrize("target", ["no_such_stage", "../x", "train@nope", "/etc/passwd", "x\ny"])
def test_a_target_that_names_no_stage_is_refused_in_one_line_before_anything_runs(target, capsys):
    with pytest.raises(UserError) as refused:
        repro([target], Options(dry=True), root=REPO)
    assert "no stage of dvc.yaml has this name" in str(refused.value) and "\n" not in str(refused.value)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("address", ["not an address", "127.0.0.1:99999", "ray://", "http://127.0.0.1:6379", "x:1\n"])
def test_a_malformed_ray_address_is_one_line(address):
    with pytest.raises(UserError, match=r"^--address .*: not a Ray address \(host:port, ray://host:port or auto\)$"):
        check_address(address, "--address")


def test_a_ray_address_where_nothing_answers_is_given_up_in_one_line():
    with socket.socket() as closed:  # a port of this machine that was free a moment ago, and is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(UserError, match=rf"^RAY_ADDRESS= ray://127.0.0.1:{port}: no Ray cluster answers there \("):
        check_address(f"ray://127.0.0.1:{port}", "RAY_ADDRESS=")


def test_a_later_run_removes_what_a_killed_run_left_and_ends_its_processes(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid whose process has ended
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    copies, sessions = tmp_path / parallel.COPIES, tmp_path / "tmp" / parallel.SESSIONS
    left = [copies / f"{dead}-0a1b2c3d" / "copy", Path(f"{sessions}{dead}-x")]
    alive = [copies / f"{os.getpid()}-plan.x", Path(f"{sessions}{os.getpid()}-y")]
    for folder in left + alive:
        folder.mkdir(parents=True)
    agent = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", f"--session-dir={left[1]}"])
    try:
        parallel.remove_leftovers(tmp_path)
        agent.wait(timeout=10)  # ended long before its 60 s (killed, and reaped): it worked in the dead run's folder
    finally:
        agent.kill()
    assert not left[0].parent.exists() and not left[1].exists() and all(folder.exists() for folder in alive)
