"""The keep_prob sweep's driver: its experiments' names and targets, and the tables it collects from their git refs."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from helpers import REPO, edit_yaml, run_script
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.config import load_params
from mnist_dnn.tools import sweep

ACCURACIES = {0.5: [0.97, 0.98, 0.99], 1.0: [0.981, 0.982, 0.983]}
NUMERICS = {"device": "cpu", "cpu_vendor": "AuthenticAMD", "torch": "2.14.1+cu130"}  # as evaluate records them


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repo with params.yaml and, per keep_prob of ACCURACIES, an experiment ref as `dvc exp run` leaves one."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    git("init", "-q", cwd=tmp_path)
    for keep_prob, (main, *seeds) in ACCURACIES.items():
        edit_yaml(tmp_path / "params.yaml", {"keep_prob": keep_prob})
        (tmp_path / "metrics/eval").mkdir(parents=True, exist_ok=True)
        (tmp_path / "metrics/seeds").mkdir(parents=True, exist_ok=True)
        (tmp_path / "metrics/eval/dnn_dropout.json").write_text(json.dumps({"accuracy": main, "loss": 0.1,
                                                                            "numerics": NUMERICS}))
        for seed, accuracy in zip([1, 2], seeds):
            (tmp_path / f"metrics/seeds/dnn_dropout-{seed}.json").write_text(json.dumps({"accuracy": accuracy,
                                                                                        "loss": 0.1,
                                                                                        "loss_after_step": [0.5]}))
        git("add", "-A", cwd=tmp_path)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"keep_prob {keep_prob}", cwd=tmp_path)
        ref = f"refs/exps/ab/cdef/{sweep.experiment_name(keep_prob)}"
        git("update-ref", ref, git("rev-parse", "HEAD", cwd=tmp_path), cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_experiment_names_and_the_stages_a_point_runs():
    assert sweep.experiment_name(0.3) == "sweep-keep_prob-0.3" and sweep.experiment_name(1.0) == "sweep-keep_prob-1"
    assert sweep.targets("dnn_dropout", [1, 2]) == ["evaluate@dnn_dropout", "seed@dnn_dropout-1", "seed@dnn_dropout-2"]


def test_collect_reads_each_points_accuracies_and_the_numerics_from_its_experiment(repo):
    runs, numerics = sweep.collect([0.5, 1.0], "dnn_dropout", [1, 2])
    assert runs == [{"keep_prob": k, "seeds": [777, 1, 2], "accuracies": a} for k, a in ACCURACIES.items()]
    assert numerics == NUMERICS


def test_collect_refuses_experiments_of_other_numerics_than_each_other(repo):
    evaluated = repo / "metrics/eval/dnn_dropout.json"
    evaluated.write_text(json.dumps(json.loads(evaluated.read_text()) | {"numerics": NUMERICS | {"cpu_vendor": "x"}}))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "on another machine", cwd=repo)
    git("update-ref", f"refs/exps/ab/cdef/{sweep.experiment_name(1.0)}", git("rev-parse", "HEAD", cwd=repo), cwd=repo)
    with pytest.raises(UserError, match=r"^the sweep's experiments ran with other numerics than each other "
                                        r"\(sweep-keep_prob-0.5, sweep-keep_prob-1\): run them all on one machine$"):
        sweep.collect([0.5, 1.0], "dnn_dropout", [1, 2])


def test_collect_names_an_experiment_that_did_not_finish(repo):
    with pytest.raises(UserError, match=r"sweep-keep_prob-0.7 did not finish; see `dvc queue logs sweep-keep_prob-0.7"):
        sweep.collect([0.5, 0.7], "dnn_dropout", [1, 2])


@pytest.mark.parametrize("path, content, expected", [
    ("metrics/eval/dnn_dropout.json", {"accuracy": "<b>1</b>", "loss": 0.1, "numerics": NUMERICS},
     "metrics/eval/dnn_dropout.json: accuracy: Input should be a valid number (got '<b>1</b>')"),
    ("metrics/seeds/dnn_dropout-2.json", {"accuracy": float("inf"), "loss": 0.1, "loss_after_step": [0.5]},
     "metrics/seeds/dnn_dropout-2.json: accuracy: Input should be a finite number (got inf)"),
])
def test_collect_refuses_an_experiments_file_of_the_wrong_shape(repo, path, content, expected):
    (repo / path).write_text(json.dumps(content))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tampered", cwd=repo)
    ref = f"refs/exps/ab/cdef/{sweep.experiment_name(1.0)}"
    git("update-ref", ref, git("rev-parse", "HEAD", cwd=repo), cwd=repo)
    with pytest.raises(UserError) as info:
        sweep.collect([1.0], "dnn_dropout", [1, 2])
    assert str(info.value) == f"{ref}:{expected}; run `dvc queue logs sweep-keep_prob-1`"


def test_collect_only_writes_the_json_table_chart_and_numerics(repo, monkeypatch):
    out = repo / "metrics/sweeps/keep_prob"
    args = ["--values", "0.5", "1", "--seeds", "1", "2", "--output", out, "--collect-only"]
    assert run_script(monkeypatch, repo, sweep.__file__, *args) == 0
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["variant"] == "dnn_dropout"
    assert [run["accuracies"] for run in written["runs"]] == list(ACCURACIES.values())
    markdown = out.with_suffix(".md").read_text()
    assert "| 98.00 ± 1.00% | 97.00%–99.00% |" in markdown and "| 98.20 ± 0.10% | 98.10%–98.30% |" in markdown
    assert out.with_suffix(".svg").read_text().startswith("<svg")
    assert json.loads(sweep.numerics_file(out).read_text()) == NUMERICS


@pytest.mark.parametrize(
    "variant, values, seeds, message",
    [
        ("dnn", [0.5], [1], "dnn uses no dropout"),
        ("dnn_dropout", [0.0, 0.5], [1], r"keep_prob values must be in \(0, 1\], got 0, 0.5"),
        ("dnn_dropout", [0.5], [777], "seed 777 is train.seed already"),
        ("nope", [0.5], [1], "unknown variant 'nope'"),
    ],
)
def test_bad_sweeps_are_refused_before_anything_is_queued(variant, values, seeds, message):
    with pytest.raises(UserError, match=message):
        sweep.check(load_params(REPO / "params.yaml"), variant, values, seeds)


def test_dvc_returns_when_the_command_does_though_a_worker_it_started_goes_on(tmp_path, monkeypatch):
    # `dvc queue start` leaves its workers running, holding the output they inherited: the sweep waited on them once.
    fake = tmp_path / "bin/dvc"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {tmp_path}/worker\necho started\necho note >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    try:
        result = subprocess.run([sys.executable, "-c", "from mnist_dnn.tools import sweep; print(sweep.dvc('queue', "
                                 "'start', capture=True), end='')"], capture_output=True, text=True, timeout=60)
    finally:
        os.kill(int((tmp_path / "worker").read_text()), signal.SIGKILL)
    assert result.returncode == 0 and result.stdout == "started\n", result.stderr


def test_the_queue_status_is_read_by_state_so_the_sweep_says_what_runs():
    status = ("Task     Name      Created    Status\n1a2b3c4  kp-0.5    04:15 PM   Running\n"
              "5d6e7f8  kp-0.7    04:15 PM   Queued\n9a8b7c6  kp-0.3    Dec 05     Success\n"
              "0f1e2d3  kp-0.9    04:16 PM   Failed\n\nWorker status: 1 active, 0 idle\n")
    assert sweep.queue_states(status) == {"Running": ["kp-0.5"], "Queued": ["kp-0.7"], "Success": ["kp-0.3"],
                                          "Failed": ["kp-0.9"]}
    assert sweep.queue_states("No experiment tasks in the queue.\n") == {}
