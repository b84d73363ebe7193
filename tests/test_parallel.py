"""`mnist-dnn repro --jobs N` on Ray, against the serial `dvc repro` of the small run: the same
dvc.lock and metrics/ embedded, and the same stages upstream of two evaluations on a two-node cluster on 127.0.0.1
(shared cache, or meeting at the remote); a failing stage, a worker node killed mid-stage, Ctrl-C, a dvc.lock made on
another CPU; a second run that trains nothing; -S, whose runs `dvc exp run -S` restores.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from ruamel.yaml import YAML

from helpers import edit_yaml, pipeline_env, ran_stages, run
from mnist_dnn import paths
from mnist_dnn.tools import parallel

pytestmark = pytest.mark.e2e
# The tests on the Ray cluster share it, on one worker; the others start Ray in their own process, on any worker.
ON_THE_CLUSTER = pytest.mark.xdist_group("ray-cluster")
LINE = re.compile(r"^\[\d+/\d+\] (\S+): (ran|cached) on node ([0-9a-f]{12}) in [\d.]+ s; running: .*$", re.M)
RUN_HERE = {"compare_optimizers", "summarize", "report"}  # all their outputs cache: false, left to `dvc repro` here
TWO = ["evaluate@softmax", "evaluate@nn_normal"]  # download, prepare, two trainings and their tests


def fresh(prepared_clone, folder):
    """A copy of conftest's prepared clone: the trained project's commit, no outputs, the data and prepared splits in
    its cache (download and prepare restore them)."""
    root = folder / "mnist-dnn"
    shutil.copytree(prepared_clone, root, symlinks=True)
    return root


def repro(root, *args):
    return subprocess.run(["mnist-dnn", "repro", *args], cwd=root, env=pipeline_env(), capture_output=True,
                          text=True, timeout=1800)


def stage_lines(output):
    """(stage, ran or cached, node) of each stage line."""
    return LINE.findall(output)


def lock_entries(root, stages):
    return {name: entry for name, entry in parallel.lock_entries(root / "dvc.lock").items() if name in stages}


def metrics_files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in (root / "metrics").rglob("*") if p.is_file()}


def assert_same_results(root, serial, stages=None):
    """dvc.lock (the whole file, or the entries of ``stages``), metrics/ (with the whole file) and the models trained
    here, byte for byte as the serial run's."""
    if stages is None:
        assert (root / "dvc.lock").read_bytes() == (serial / "dvc.lock").read_bytes()
        ours, theirs = metrics_files(root), metrics_files(serial)
        assert sorted(ours) == sorted(theirs)
        assert [name for name in ours if ours[name] != theirs[name]] == []
    else:
        assert lock_entries(root, stages) == lock_entries(serial, stages)
    models = [path.relative_to(root) for path in (root / "models").glob("*.safetensors")]
    assert models and [path for path in models if (root / path).read_bytes() != (serial / path).read_bytes()] == []


def upstream_of_two():
    return {"download", "prepare", "train@softmax", "train@nn_normal", *TWO}


def add_worker(nodes):
    """A worker node of one CPU on 127.0.0.1, joined to ``nodes``."""
    worker = nodes.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    nodes.wait_for_nodes()
    return worker


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of a head with no CPU for tasks and two worker nodes of one CPU each, all on 127.0.0.1, shared
    by this module's tests (a test that removes a worker adds another in its place)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray turns a loopback address into the machine's own IP unless this is 0; then every node is 127.0.0.1
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray
        from ray.cluster_utils import Cluster

        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                              "node_ip_address": "127.0.0.1"})
        workers = [add_worker(nodes) for _ in range(2)]
        try:
            yield nodes, workers
        finally:
            ray.shutdown()
            nodes.shutdown()


def test_embedded_ray_gives_the_bytes_of_dvc_repro_and_a_second_run_trains_nothing(cut_project, tmp_path):
    """The whole pipeline of the cut project (two variants, one optimizer), from a clone without the committed outputs
    of the stages run here: every stage a task but those, and the bytes of its serial `dvc repro`."""
    root = tmp_path / "mnist-dnn"
    run(["git", "clone", "-q", str(cut_project), str(root)], tmp_path)
    for name in RUN_HERE:
        for out in lock_entries(root, {name})[name]["outs"]:
            (root / out["path"]).unlink(missing_ok=True)  # those in git; DVC's cache has the others
    first = repro(root, "--jobs", "2")
    assert first.returncode == 0, first.stderr
    planned, here = parallel.plan(root, [])
    lines, tasks = stage_lines(first.stdout), sorted(name for name, _ in planned)
    assert set(here) == RUN_HERE and len(tasks) == 7  # download, prepare, two trainings and tests, one optimizer
    assert sorted(stage for stage, _, _ in lines) == tasks and all(what == "ran" for _, what, _ in lines)
    [ran_here] = re.findall(r"^dvc repro here: .*; ran (.*)$", first.stdout, re.M)
    assert set(ran_here.split(", ")) == RUN_HERE
    epochs = YAML(typ="safe").load(root / "params.yaml")["train"]["epochs"]
    trainings = [name for name in tasks if name.startswith(("train@", "optimizer_study@"))]
    for name in trainings:  # every epoch as it ends, before the stage's own line
        shown = re.findall(rf"^{re.escape(name)}: epoch +(\d+): train loss .*$", first.stdout, re.M)
        assert shown == [str(epoch) for epoch in range(1, epochs + 1)], first.stdout
        assert first.stdout.index(f"{name}: epoch") < first.stdout.index(f"] {name}: ran")
        assert f"Running stage '{name}'" in (root / parallel.LOGS / f"{name}.log").read_text()
    table = (root / paths.SUMMARY_TABLE).read_text().strip()
    assert first.stdout.endswith(f"\n{table}\n\nreport: {paths.REPORT}\n")  # the table and the report last
    assert_same_results(root, cut_project)
    second = repro(root, "--jobs", "2")
    assert second.returncode == 0, second.stderr
    [skipped] = re.findall(r"^up to date: (.*)$", second.stdout, re.M)  # as dvc status finds them: no task, no Ray
    assert sorted(skipped.split(", ")) == tasks and stage_lines(second.stdout) == []
    assert "ran nothing" in second.stdout and "warning" not in second.stderr
    assert "up to date" in run(["dvc", "status"], root)
    assert not (root / ".dvc/tmp/repro").exists() or list((root / ".dvc/tmp/repro").iterdir()) == []


@ON_THE_CLUSTER
@pytest.mark.parametrize("via_remote", [False, True], ids=["shared-cache", "via-remote"])
def test_a_two_node_cluster_runs_stages_on_both_nodes_with_the_same_bytes(trained_project, prepared_clone, tmp_path,
                                                                          cluster, via_remote):
    """The stages upstream of two evaluations (two trainings at once), on the shared cache or meeting at the remote;
    the whole pipeline's bytes are the embedded test's, on the same code path."""
    nodes, workers = cluster
    root = fresh(prepared_clone, tmp_path)
    result = repro(root, "--jobs", "2", "--address", nodes.address, *(["--via-remote"] if via_remote else []), *TWO)
    assert result.returncode == 0, result.stderr
    lines = stage_lines(result.stdout)
    assert {stage for stage, _, _ in lines} == upstream_of_two()
    assert {node for _, _, node in lines} == {worker.node_id[:12] for worker in workers}
    assert_same_results(root, trained_project[0], upstream_of_two())
    assert "warning" not in result.stderr


def test_a_lock_made_on_another_cpu_is_replaced_and_nothing_trains_twice(trained_project, tmp_path):
    """A copy of the trained project whose dvc.lock names two models that neither its cache nor its run-cache has, as
    one committed from another CPU vendor does: data and prepared splits up to date, the two trainings rerun."""
    root = tmp_path / "mnist-dnn"
    shutil.copytree(trained_project[0], root, symlinks=True)
    shutil.rmtree(root / ".dvc/cache/runs")
    lock = (root / "dvc.lock").read_text()
    for entry in lock_entries(root, {"train@softmax", "train@nn_normal"}).values():
        [model] = [out["md5"] for out in entry["outs"] if out["path"].startswith(f"{paths.MODELS}/")]
        lock = lock.replace(model, f"{int(model, 16) ^ 1:032x}")  # in the train entry and the evaluate one
    (root / "dvc.lock").write_text(lock)
    run(["git", "commit", "-qam", "a lock made elsewhere"], root)
    result = repro(root, "--jobs", "2", *TWO)
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^up to date: (.*)$", result.stdout, re.M) == ["download, prepare"]
    ran = upstream_of_two() - {"download", "prepare"}
    assert {stage: what for stage, what, _ in stage_lines(result.stdout)} == dict.fromkeys(ran, "ran")
    assert "ran nothing" in result.stdout and "warning" not in result.stderr, result.stdout + result.stderr
    assert_same_results(root, trained_project[0], upstream_of_two())


def test_set_params_fill_the_run_cache_for_dvc_exp_run_and_leave_the_workspace_alone(cut_project, tmp_path):
    """`-S extra_seeds=[1]` trains the seed stages as tasks; `dvc exp run -S extra_seeds=[1]` then restores them."""
    root = tmp_path / "mnist-dnn"
    shutil.copytree(cut_project, root, symlinks=True)
    before = workspace_files(root)
    result = repro(root, "--jobs", "2", "-S", "extra_seeds=[1]", "seed@*")
    assert result.returncode == 0, result.stderr
    seeds = {f"seed@{variant}-1" for variant in YAML(typ="safe").load(root / "params.yaml")["variants"]}
    assert {stage: what for stage, what, _ in stage_lines(result.stdout)} == {
        "download": "cached", "prepare": "cached", **dict.fromkeys(seeds, "ran")}
    assert "dvc exp run -S 'extra_seeds=[1]'" in result.stdout
    assert workspace_files(root) == before
    experiment = run(["dvc", "exp", "run", "-S", "extra_seeds=[1]"], root)
    assert ran_stages(experiment) == {"summarize", "report"}, experiment  # only stages whose outputs are cache: false
    restored = set(re.findall(r"Stage '([^']+)' is cached - skipping run", experiment))
    assert seeds <= restored, experiment


def workspace_files(root):
    """Each file of the workspace outside .git and .dvc, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not {".git", ".dvc"} & set(p.relative_to(root).parts)}


@ON_THE_CLUSTER
def test_a_worker_node_lost_mid_stage_is_retried_on_the_other(trained_project, prepared_clone, tmp_path, cluster):
    nodes, workers = cluster
    victim = workers[0]
    root = fresh(prepared_clone, tmp_path)
    process = subprocess.Popen(["mnist-dnn", "repro", "--jobs", "2", "--address", nodes.address, *TWO], cwd=root,
                               env=pipeline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not list(root.glob(f".dvc/tmp/repro/*/{victim.node_id[:8]}-train*")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        nodes.remove_node(victim, allow_graceful=False)
        out, err = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
        if victim not in nodes.worker_nodes:
            workers[0] = add_worker(nodes)  # the module's next tests get two workers again
    assert process.returncode == 0, err
    assert {stage for stage, _, _ in stage_lines(out)} == upstream_of_two()
    assert_same_results(root, trained_project[0], upstream_of_two())


def test_a_failing_stage_stops_the_run_in_one_line_and_a_rerun_resumes(trained_project, prepared_clone, tmp_path):
    root = fresh(prepared_clone, tmp_path)
    edit_yaml(root / "params.yaml", {"optimizer.lr": 1e30})
    failed = repro(root, "--jobs", "2", "evaluate@nn_xavier")
    assert failed.returncode == 2
    [log] = re.findall(r"^error: train@nn_xavier: nn_xavier: training diverged in epoch 1 .* \(its whole output: "
                       r"(\S+)\)\n\Z", failed.stderr)
    assert "ERROR: failed to reproduce 'train@nn_xavier'" in (root / log).read_text()
    assert not (root / paths.model_file("nn_xavier")).exists()
    run(["git", "checkout", "--", "params.yaml"], root)
    resumed = repro(root, "--jobs", "2", "evaluate@nn_xavier")
    assert resumed.returncode == 0, resumed.stderr
    done = {stage: what for stage, what, _ in stage_lines(resumed.stdout)}
    assert done == {"download": "cached", "prepare": "cached", "train@nn_xavier": "ran", "evaluate@nn_xavier": "ran"}
    stages = {"download", "prepare", "train@nn_xavier", "evaluate@nn_xavier"}
    assert lock_entries(root, stages) == lock_entries(trained_project[0], stages)


@pytest.mark.parametrize("ray_at, stop", [("embedded", signal.SIGINT), ("embedded", signal.SIGTERM),
                                           pytest.param("cluster", signal.SIGINT, marks=ON_THE_CLUSTER)])
def test_ctrl_c_stops_every_task_and_leaves_the_workspace_as_it_was(prepared_clone, tmp_path, request, ray_at, stop):
    """Embedded, Ctrl-C (or SIGTERM) reaches the tasks too; on the cluster only `mnist-dnn repro` gets it, and Ray
    stops the tasks of its job when it leaves. Nothing is left: no copy, no Ray session folder."""
    address = ["--address", request.getfixturevalue("cluster")[0].address] if ray_at == "cluster" else []
    root = fresh(prepared_clone, tmp_path)
    before = {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}
    process = subprocess.Popen(["mnist-dnn", "repro", "--jobs", "2", *address, *TWO], cwd=root, env=pipeline_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not list(root.glob(".dvc/tmp/repro/*/*-train*")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        os.killpg(process.pid, stop)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    said = "interrupted" if stop == signal.SIGINT else "terminated (SIGTERM)"
    assert (process.returncode, err) == (128 + stop, f"error: {said}\n")
    sessions = f"{parallel.SESSIONS}{process.pid}-*"  # removed at exit, or by the watchdog once Ray's last write ends
    deadline = time.monotonic() + 60
    while list(Path(tempfile.gettempdir()).glob(sessions)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(Path(tempfile.gettempdir()).glob(sessions))
    after = {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}
    assert {p for p in after - before if not p.startswith(".dvc/")} == set()  # the stages wrote only in copies
    assert not list(root.glob(".dvc/tmp/repro/*/*"))
    deadline = time.monotonic() + 30
    while in_copies(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert in_copies(root) == []  # no stage left running in a copy


def test_a_killed_driver_leaves_no_process_nor_copy_and_the_next_run_gives_the_same_bytes(trained_project,
                                                                                          prepared_clone, tmp_path):
    """SIGKILL to `mnist-dnn repro` alone, mid-training: its watchdog ends Ray's processes and the stages, and removes
    the copies and Ray's session folder; the next run gives the bytes of the serial `dvc repro`."""
    root = fresh(prepared_clone, tmp_path)
    process = subprocess.Popen(["mnist-dnn", "repro", "--jobs", "2", *TWO], cwd=root, env=pipeline_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not list(root.glob(".dvc/tmp/repro/*/*-train*")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.kill()
        process.wait()
        session = f"{parallel.SESSIONS}{process.pid}-"
        deadline = time.monotonic() + 60
        while (left_behind(root, session) or list(root.glob(".dvc/tmp/repro/*"))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left_behind(root, session) == [] and list(root.glob(".dvc/tmp/repro/*")) == []
        assert not list(Path(tempfile.gettempdir()).glob(f"{session}*"))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    resumed = repro(root, "--jobs", "2", *TWO)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_results(root, trained_project[0], upstream_of_two())


def left_behind(root, session):
    """The processes still working for a run: in its copies, or Ray's in its session folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        args, cwd = proc.info["cmdline"] or (), proc.info["cwd"] or ""
        if cwd.startswith(str(root / ".dvc/tmp/repro")) or any(session in arg for arg in args):
            found.append(proc.pid)
    return found


def test_a_copy_that_cannot_be_made_is_the_stages_error_in_one_line(prepared_clone, tmp_path):
    root = fresh(prepared_clone, tmp_path)
    (root / parallel.COPIES).parent.mkdir(parents=True, exist_ok=True)
    (root / parallel.COPIES).write_text("a file where the copies go, as a full or read-only disk refuses them")
    failed = repro(root, "--jobs", "2", "--force", "download")
    assert failed.returncode == 2
    assert re.fullmatch(r"error: download: cannot make its copy of the workspace in \S+: Not a directory\n",
                        failed.stderr), failed.stderr


def in_copies(root):
    """The processes whose working folder is a copy of ``root``'s workspace."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(str(root / ".dvc/tmp/repro")):
                found.append(proc.name)
        except OSError:  # gone, or not ours to read
            pass
    return found
