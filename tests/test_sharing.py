"""Artifacts that travel: the real `dvc repro`, `push` and `pull` between clones of a temporary copy of this project,
through an S3-compatible server (moto's, on 127.0.0.1) and a read-only HTTP copy; runners and a collector meeting
only at the remote; `dvc get` of one model; no corruption on the way. The small run (helpers.SMALL_RUN), cut to two
variants (conftest's cut_project).
"""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from ruamel.yaml import YAML

from helpers import CUT_VARIANTS, commit, edit_yaml, pipeline_env, ran_stages, run
from mnist_dnn import paths

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]  # one worker, in order
BUCKET = "mnist-dnn"
TAMPERED, INTACT = CUT_VARIANTS  # the tampered pull's model, and the one pulled intact before it

def clone(source, machine):
    """A git clone of ``source`` in the folder ``machine``/mnist-dnn: its own workspace and DVC cache."""
    root = machine / "mnist-dnn"
    run(["git", "clone", "-q", str(source), str(root)], machine)
    return root


def use_s3(root, endpoint, name="storage", bucket=BUCKET):
    """Point remote ``name`` (a new one unless ``storage``) at the S3 server in .dvc/config.local, as a maintainer sets
    the write address."""
    url = f"s3://{bucket}/store"
    if name == "storage":
        run(["dvc", "remote", "modify", "--local", name, "url", url], root)
    else:
        run(["dvc", "remote", "add", "--local", name, url], root)
    run(["dvc", "remote", "modify", "--local", name, "endpointurl", endpoint], root)


def timed(cmd, cwd):
    start = time.monotonic()
    output = run(cmd, cwd)
    return output, round(time.monotonic() - start, 1)


def predict_json(root, *args):
    return json.loads(run(["mnist-dnn", "predict", *args, "--json"], root))


def push_run_cache(root):
    """What a runner does after `dvc repro`: `dvc push --run-cache`, then the outputs it leaves behind; its seconds."""
    return timed(["mnist-dnn", "push-run-cache"], root)[1]


@pytest.fixture(scope="module")
def machine_a(cut_project, tmp_path_factory):
    """Machine A: a copy of the trained project cut to two variants (conftest's cut_project, committed), pushed to the
    offline default remote (the folder ../mnist-dnn-storage beside the clone)."""
    root = tmp_path_factory.mktemp("machine-a") / "mnist-dnn"
    shutil.copytree(cut_project, root, symlinks=True)
    run(["dvc", "push"], root)  # the committed default remote: no set-up, no network
    return root


@pytest.fixture(scope="module")
def pushed_to_s3(machine_a, s3, figures):
    """A, as a maintainer, sets the S3 write address in .dvc/config.local and runs `dvc push --run-cache`."""
    s3.create_bucket(Bucket=BUCKET)
    use_s3(machine_a, s3.meta.endpoint_url)
    _, figures["A: dvc push --run-cache to S3 (s)"] = timed(["dvc", "push", "--run-cache"], machine_a)
    return machine_a


@pytest.fixture(scope="module")
def machine_b(pushed_to_s3, s3, tmp_path_factory, figures):
    """Machine B: another clone with its own cache, after `mnist-dnn pull-run-cache` from S3."""
    root = clone(pushed_to_s3, tmp_path_factory.mktemp("machine-b"))
    use_s3(root, s3.meta.endpoint_url)
    _, figures["B: mnist-dnn pull-run-cache from S3 (s)"] = timed(["mnist-dnn", "pull-run-cache"], root)
    return root


@pytest.mark.remote
def test_a_clone_that_pulls_from_s3_reruns_nothing_and_predicts(machine_a, machine_b, figures):
    rerun = ran_stages(run(["dvc", "repro"], machine_b))
    figures["B: stages rerun by dvc repro"] = len(rerun)
    assert rerun == set()
    assert "up to date" in run(["dvc", "status"], machine_b)
    for variant in CUT_VARIANTS:
        model = str(paths.model_file(variant))
        assert (machine_b / model).read_bytes() == (machine_a / model).read_bytes()
    args = ["--variant", "dnn_dropout", "--index", "0"]
    assert predict_json(machine_b, *args) == predict_json(machine_a, *args)


@pytest.mark.remote
def test_a_run_cache_entry_made_on_one_machine_restores_the_stage_on_another(
    machine_b, pushed_to_s3, s3, tmp_path_factory
):
    # B trains keep_prob=0.5 without committing it, and pushes its run-cache; C, a fresh clone, asks for the same
    # params: the device is not part of a stage's key (cmd, deps' hashes, params), so B's run is C's cache.
    edit_yaml(machine_b / "params.yaml", {"keep_prob": 0.5})
    trained = ran_stages(run(["dvc", "repro"], machine_b))
    assert "train@dnn_dropout" in trained
    push_run_cache(machine_b)
    c = clone(pushed_to_s3, tmp_path_factory.mktemp("machine-c"))
    use_s3(c, s3.meta.endpoint_url)
    edit_yaml(c / "params.yaml", {"keep_prob": 0.5})
    run(["mnist-dnn", "pull-run-cache"], c)
    output = run(["dvc", "repro"], c)
    assert ran_stages(output) == {"summarize", "report"}, output  # outputs all `cache: false`: no run-cache for them
    assert "Stage 'train@dnn_dropout' is cached - skipping run" in output
    for path in (paths.model_file("dnn_dropout"), paths.eval_file("dnn_dropout"), paths.SUMMARY):
        assert (c / path).read_bytes() == (machine_b / path).read_bytes()


@pytest.mark.remote
def test_runners_split_the_seeds_and_a_collector_trains_nothing(pushed_to_s3, s3, tmp_path_factory, figures):
    maintainer = clone(pushed_to_s3, tmp_path_factory.mktemp("maintainer"))
    edit_yaml(maintainer / "params.yaml", {"extra_seeds": [1, 2]})
    commit(maintainer, "extra_seeds [1, 2]")
    runners = {seed: clone(maintainer, tmp_path_factory.mktemp(f"runner-{seed}")) for seed in (1, 2)}

    def work(seed):
        """What runner ``seed`` does: train its seed's stages, push their run-cache; its stages run and seconds."""
        use_s3(runners[seed], s3.meta.endpoint_url)
        _, pull_seconds = timed(["mnist-dnn", "pull-run-cache"], runners[seed])
        output, repro_seconds = timed(["dvc", "repro", "--glob", f"seed@*-{seed}"], runners[seed])
        return ran_stages(output), pull_seconds, repro_seconds, push_run_cache(runners[seed])

    with ThreadPoolExecutor(len(runners)) as pool:  # at the same time, as two machines would
        for seed, (ran, pull_seconds, repro_seconds, push_seconds) in zip(runners, pool.map(work, runners)):
            assert ran == {f"seed@{variant}-{seed}" for variant in CUT_VARIANTS}  # download, prepare restored
            figures[f"runner {seed}: mnist-dnn pull-run-cache (s)"] = pull_seconds
            figures[f"runner {seed}: dvc repro seed@*-{seed} (s)"] = repro_seconds
            figures[f"runner {seed}: push --run-cache (s)"] = push_seconds
    collector = clone(maintainer, tmp_path_factory.mktemp("collector"))
    use_s3(collector, s3.meta.endpoint_url)
    _, figures["collector: mnist-dnn pull-run-cache (s)"] = timed(["mnist-dnn", "pull-run-cache"], collector)
    output, figures["collector: dvc repro (s)"] = timed(["dvc", "repro"], collector)
    rerun = ran_stages(output)
    figures["collector: stages run"] = ", ".join(sorted(rerun))
    # No training: extra_seeds retrains no train@<variant>, and the seeds' runs come from the runners' run-cache
    assert rerun == {"summarize", "report"}
    for variant in CUT_VARIANTS:
        for seed, runner in runners.items():
            path = f"metrics/seeds/{variant}-{seed}.json"
            assert (collector / path).read_bytes() == (runner / path).read_bytes()
    summary = {row["variant"]: row for row in json.loads((collector / "metrics/summary.json").read_text())}
    for variant in CUT_VARIANTS:  # the multi-seed table: train.seed's run and each runner's
        paths = [f"metrics/eval/{variant}.json", *(f"metrics/seeds/{variant}-{seed}.json" for seed in runners)]
        accuracies = [json.loads((collector / path).read_text())["accuracy"] for path in paths]
        assert summary[variant]["seeds"] == 3
        assert summary[variant]["mean"] == pytest.approx(sum(accuracies) / 3)
    assert "## Seed noise (3 seeds per variant)" in (collector / "metrics/summary.md").read_text()
    assert ran_stages(run(["dvc", "repro"], collector)) == set()


@pytest.fixture(scope="module")
def public_copy(machine_a, http_folder):
    """The folder A pushed to (its default remote), served read-only over HTTP, as a public copy would be."""
    return http_folder(machine_a.parent / "mnist-dnn-storage")


@pytest.mark.remote
def test_a_stranger_pulls_the_read_only_http_copy_and_reruns_nothing(machine_a, public_copy, tmp_path_factory, figures):
    stranger = clone(machine_a, tmp_path_factory.mktemp("stranger"))
    run(["dvc", "remote", "modify", "--local", "storage", "url", public_copy], stranger)
    _, figures["stranger: dvc pull over HTTP (s)"] = timed(["dvc", "pull"], stranger)
    rerun = ran_stages(run(["dvc", "repro"], stranger))
    figures["stranger: stages rerun by dvc repro"] = len(rerun)
    assert rerun == set()
    model = str(paths.model_file("dnn_dropout"))
    assert (stranger / model).read_bytes() == (machine_a / model).read_bytes()


@pytest.mark.remote
def test_dvc_get_one_model_then_predict_with_it(machine_a, public_copy, tmp_path_factory):
    # A published repository: its committed default remote is the read-only HTTP copy.
    published = clone(machine_a, tmp_path_factory.mktemp("published"))
    run(["dvc", "remote", "modify", "storage", "url", public_copy], published)
    commit(published, "default remote: the public copy")
    outsider = tmp_path_factory.mktemp("outsider")  # no clone, no pipeline
    run(["dvc", "get", str(published), str(paths.model_file("dnn_dropout"))], outsider)
    test_set = "data/prepared/test.safetensors"
    run(["dvc", "get", str(published), test_set, "-o", test_set], outsider)
    model = outsider / "dnn_dropout.safetensors"
    assert model.read_bytes() == (machine_a / paths.model_file("dnn_dropout")).read_bytes()
    got = predict_json(outsider, "--model", "dnn_dropout.safetensors", "--index", "0")
    assert got == predict_json(machine_a, "--variant", "dnn_dropout", "--index", "0")


def s3_objects(s3, bucket):
    """Key -> bytes of every object in ``bucket``."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


@pytest.mark.remote
def test_a_push_killed_mid_way_completes_when_run_again(pushed_to_s3, s3):
    root, bucket = pushed_to_s3, f"killed-push-{uuid.uuid4().hex[:12]}"  # a bucket and remote of this run's own
    s3.create_bucket(Bucket=bucket)
    use_s3(root, s3.meta.endpoint_url, name=bucket, bucket=bucket)
    push = subprocess.Popen(
        ["dvc", "push", "-r", bucket, "--jobs", "1"], cwd=root, env=pipeline_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not s3.list_objects_v2(Bucket=bucket).get("KeyCount"):  # kill it once the first object has arrived
        assert push.poll() is None and time.monotonic() < deadline, "the push ended before its first object arrived"
        time.sleep(0.05)
    os.killpg(push.pid, signal.SIGKILL)
    push.wait()
    at_kill = len(s3_objects(s3, bucket))
    run(["dvc", "push", "-r", bucket], root)
    assert "in sync" in run(["dvc", "status", "--cloud", "-r", bucket], root)
    objects = s3_objects(s3, bucket)
    assert 0 < at_kill < len(objects)  # killed mid-way
    cache = root / ".dvc/cache"
    for key, content in objects.items():  # every object whole: the same bytes as in A's cache
        assert content == (cache / key.removeprefix("store/")).read_bytes(), key


def test_a_pull_of_a_tampered_object_fails_naming_the_file_and_keeps_the_workspace(machine_a, tmp_path_factory):
    tampered = tmp_path_factory.mktemp("tampered") / "storage"
    shutil.copytree(machine_a.parent / "mnist-dnn-storage", tampered)
    lock = YAML(typ="safe").load(machine_a / "dvc.lock")
    model = str(paths.model_file(TAMPERED))
    md5 = next(out["md5"] for out in lock["stages"][f"train@{TAMPERED}"]["outs"] if out["path"] == model)
    obj = tampered / "files/md5" / md5[:2] / md5[2:]
    content = bytearray(obj.read_bytes())
    content[-1] ^= 0xFF  # one byte changed, same size
    obj.write_bytes(bytes(content))
    d = clone(machine_a, tmp_path_factory.mktemp("machine-d"))
    run(["dvc", "remote", "modify", "--local", "storage", "url", str(tampered)], d)
    run(["dvc", "pull", "prepare", f"train@{INTACT}"], d)  # intact objects, already in the workspace
    before = {p: p.read_bytes() for p in (d / "data/prepared").iterdir()} | {
        d / paths.model_file(INTACT): (d / paths.model_file(INTACT)).read_bytes()
    }
    pull = subprocess.run(["dvc", "pull"], cwd=d, env=pipeline_env(), capture_output=True, text=True)
    assert pull.returncode != 0
    assert str(paths.model_file(TAMPERED)) in pull.stderr + pull.stdout
    assert not (d / paths.model_file(TAMPERED)).exists()  # the tampered bytes never reach the workspace
    assert {p: p.read_bytes() for p in before} == before
