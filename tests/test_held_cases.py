"""What held before the run-cache checks and signal handling came in, and must keep holding: a stage stopped midway
that the next `dvc repro` restores, a clone in an awkward path with a bare environment, hardlink and symlink caches
under in-place rewrites, two `push-run-cache` to one remote, two `dvc repro` on one output, concurrent predicts.
The small run (helpers.SMALL_RUN); a local folder as the remote.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import SMALL_RUN, commit, edit_yaml, pipeline_env, ran_stages, run
from mnist_dnn import paths

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]  # one worker, in order
MODEL = paths.model_file("softmax").as_posix()


@pytest.fixture(scope="module")
def project(trained_project, tmp_path_factory):
    """A committed copy of the trained project (the small run) whose outputs and run-cache are on its default remote."""
    root = tmp_path_factory.mktemp("held") / "mnist-dnn"
    shutil.copytree(trained_project[0], root, symlinks=True)
    commit(root, "trained")
    run(["mnist-dnn", "push-run-cache"], root)
    return root


def clone(project, folder, env=None, umask=None, remote=None):
    """A git clone of ``project`` in ``folder``, after `mnist-dnn pull-run-cache` from ``remote`` (default: its
    remote); run with ``env`` and ``umask`` when given."""
    root = folder / "mnist-dnn"
    folder.mkdir(parents=True, exist_ok=True)
    for cmd, cwd in [
        (["git", "clone", "-q", str(project), str(root)], folder),
        (["dvc", "remote", "modify", "--local", "storage", "url", str(remote or project.parent / "mnist-dnn-storage")],
         root),
        (["mnist-dnn", "pull-run-cache"], root),
    ]:
        bare_run(cmd, cwd, env, umask)
    return root


def bare_run(cmd, cwd, env=None, umask=None):
    """:func:`helpers.run` with ``env`` (else the pipeline's) and ``umask``; stdout."""
    result = subprocess.run(cmd, cwd=cwd, env=env or pipeline_env(), capture_output=True, text=True, timeout=900,
                            preexec_fn=None if umask is None else lambda: os.umask(umask))
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def leftovers(root):
    """Staging folders and temp files left in the workspace (DVC's own .dvc/tmp aside)."""
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name
            if ".dvc" not in p.relative_to(root).parts and ".git" not in p.relative_to(root).parts]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_stage_stopped_midway_leaves_nothing_half_written_and_dvc_repro_restores_it(project, tmp_path, signum):
    b = clone(project, tmp_path)
    committed = (b / paths.model_file("dnn")).read_bytes()
    repro = subprocess.Popen(["dvc", "repro", "--force", "--single-item", "train@dnn"], cwd=b, env=pipeline_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((b / "metrics/train").glob(".dnn.*.tmp")):  # the stage is writing its outputs
            assert repro.poll() is None and time.monotonic() < deadline, "train@dnn never started writing"
            time.sleep(0.05)
        os.killpg(repro.pid, signum)
        output, _ = repro.communicate(timeout=120)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
            repro.communicate()
    assert repro.returncode != 0
    assert "Traceback" not in output and ("error: interrupted" in output or "error: terminated (SIGTERM)" in output)
    assert leftovers(b) == []
    output = run(["dvc", "repro"], b)
    assert ran_stages(output) == set() and "Stage 'train@dnn' is cached" in output
    assert (b / paths.model_file("dnn")).read_bytes() == committed
    assert "up to date" in run(["dvc", "status"], b)


def test_a_clone_in_an_awkward_path_with_a_bare_environment_pulls_retrains_and_predicts(project, tmp_path):
    env = {name: pipeline_env()[name] for name in ("PATH", "MNIST_MIRROR") if name in pipeline_env()}
    env.update(LC_ALL="POSIX", DVC_NO_ANALYTICS="1", PYTHONPATH="src")  # no HOME, no TMPDIR
    b = clone(project, tmp_path / "a clone ü€ $HOME `x` it's", env=env, umask=0o077)
    assert ran_stages(bare_run(["dvc", "repro"], b, env, 0o077)) == set()
    committed = (b / MODEL).read_bytes()
    assert "train@softmax" in ran_stages(bare_run(["dvc", "repro", "--force", "--single-item", "train@softmax"], b, env,
                                                           0o077))
    assert (b / MODEL).read_bytes() == committed  # same params, seed and machine: the same bytes
    answer = json.loads(bare_run(["mnist-dnn", "predict", "--variant", "softmax", "--index", "0", "--json"], b, env))
    assert answer["label"] == 7 and answer["trained_with"]["params"]["train"]["epochs"] == SMALL_RUN["train.epochs"]
    bare_run(["mnist-dnn", "verify-cache"], b, env)
    assert leftovers(b) == []


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_a_link_cache_survives_a_stage_that_rewrites_its_outputs(project, tmp_path, link):
    b = clone(project, tmp_path)
    run(["dvc", "config", "--local", "cache.type", link], b)
    run(["dvc", "checkout", "--relink"], b)
    assert (b / MODEL).is_symlink() if link == "symlink" else (b / MODEL).stat().st_nlink > 1
    committed = (b / MODEL).read_bytes()
    edit_yaml(b / "params.yaml", {"optimizer.lr": 0.003})
    assert "train@softmax" in ran_stages(run(["dvc", "repro", "train@softmax"], b))
    assert (b / MODEL).read_bytes() != committed
    run(["mnist-dnn", "verify-cache"], b)  # nothing was written through a link into the cache
    run(["git", "checkout", "--", "params.yaml"], b)
    assert "Stage 'train@softmax' is cached" in run(["dvc", "repro", "train@softmax"], b)
    assert (b / MODEL).read_bytes() == committed


def test_two_push_run_cache_to_one_remote_keep_both_runs(project, tmp_path):
    shared = tmp_path / "shared-remote"
    shutil.copytree(project.parent / "mnist-dnn-storage", shared)
    runners = {lr: clone(project, tmp_path / f"lr-{lr}", remote=shared) for lr in (0.002, 0.003)}
    for lr, root in runners.items():
        edit_yaml(root / "params.yaml", {"optimizer.lr": lr})
        run(["dvc", "repro", "train@softmax"], root)
    with ThreadPoolExecutor(2) as pool:  # at the same time, as two machines would
        list(pool.map(lambda root: run(["mnist-dnn", "push-run-cache"], root), runners.values()))
    for lr, root in runners.items():
        c = clone(project, tmp_path / f"collector-{lr}", remote=shared)  # pulls both runners' runs
        edit_yaml(c / "params.yaml", {"optimizer.lr": lr})
        assert "Stage 'train@softmax' is cached" in run(["dvc", "repro", "train@softmax"], c)
        assert (c / MODEL).read_bytes() == (root / MODEL).read_bytes()


def test_two_dvc_repro_of_one_output_give_one_run_or_dvcs_lock_line(project, tmp_path):
    b = clone(project, tmp_path)
    committed = (b / MODEL).read_bytes()
    cmd = ["dvc", "repro", "--force", "--single-item", "train@softmax"]
    runs = [subprocess.Popen(cmd, cwd=b, env=pipeline_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in runs]
    assert any(status == 0 for status, _ in results), results
    for status, output in results:
        assert "Traceback" not in output
        assert status == 0 or "is busy, it is being blocked by" in output or "Unable to acquire lock" in output
    assert (b / MODEL).read_bytes() == committed and leftovers(b) == []
    assert "up to date" in run(["dvc", "status"], b)


def test_concurrent_predicts_give_one_answer(project):
    cmd = ["mnist-dnn", "predict", "--variant", "dnn_dropout", "--index", "3", "--json"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: run(cmd, project), range(4)))
    assert len(set(answers)) == 1 and json.loads(answers[0])["source"] == "test image 3"
