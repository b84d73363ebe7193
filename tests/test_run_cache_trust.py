"""A shared remote that someone else can write: `mnist-dnn pull-run-cache` refuses every run-cache entry that is not
a run of a stage of dvc.yaml (an extra out, a missing one, edited deps or params) or whose objects contradict it
(a model trained with other params, a folder listing a path out of it), so nothing of it reaches the workspace; and
a model of other params that still arrives (plain `dvc repro --pull`) is refused where it is used. The small
run cut to two variants (conftest's cut_project), a local folder as the remote and the moto S3 server.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers import edit_yaml, pipeline_env, ran_stages, run
from mnist_dnn import paths
from mnist_dnn.tools import dvc_internals

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]  # one worker, in order
PLANTED = b"import os\nos.environ['PLANTED'] = 'yes'\n"


@pytest.fixture(scope="module")
def origin(cut_project, tmp_path_factory):
    """A copy of the trained project cut to two variants (conftest's cut_project, committed): the colleague whose
    runs are shared."""
    root = tmp_path_factory.mktemp("origin") / "mnist-dnn"
    shutil.copytree(cut_project, root, symlinks=True)
    return root


@pytest.fixture(scope="module")
def pushed(origin):
    """The folder that ``origin`` pushed everything it ran to: its outputs and run-cache entries."""
    assert mnist_dnn(origin, "push-run-cache", "-r", "storage").returncode == 0  # the default: ../mnist-dnn-storage
    return origin.parent / "mnist-dnn-storage"


@pytest.fixture
def remote(pushed, tmp_path):
    """A folder remote of this test's own, holding everything ``origin`` ran."""
    folder = tmp_path / "shared-remote"
    shutil.copytree(pushed, folder)
    return folder


def clone(origin, folder, remote, s3=None):
    """A git clone of ``origin`` in ``folder``, its default remote pointed at ``remote``; with the boto3 client
    ``s3``, at a new bucket of that S3 server holding a copy of ``remote``."""
    root = folder / "mnist-dnn"
    folder.mkdir(parents=True, exist_ok=True)
    run(["git", "clone", "-q", str(origin), str(root)], folder)
    url = str(remote)
    if s3 is not None:
        bucket = f"trust-{folder.name.lower().replace('_', '-')[-40:]}"
        s3.create_bucket(Bucket=bucket)
        for path in remote.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"store/{path.relative_to(remote).as_posix()}")
        url = f"s3://{bucket}/store"
    run(["dvc", "remote", "modify", "--local", "storage", "url", url], root)
    if s3 is not None:
        run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", s3.meta.endpoint_url], root)
    return root


def mnist_dnn(root, *args):
    return subprocess.run(["mnist-dnn", *args], cwd=root, env=pipeline_env(), capture_output=True, text=True,
                          timeout=600)


def refusals(result):
    """The lines of pull-run-cache's stderr that refuse an entry (DVC's own warnings aside)."""
    return [line for line in result.stderr.splitlines() if line.startswith("refused run-cache entry ")]


def entries(remote):
    """(path, entry) of every run-cache entry on ``remote``."""
    return [(path, YAML(typ="safe").load(path)) for path in sorted(Path(remote, "runs").glob("*/*/*"))]


def entry_of(remote, stage_cmd_part, params=None):
    """The path and content of the one entry on ``remote`` whose command contains ``stage_cmd_part`` (and whose
    params.yaml values include ``params``)."""
    found = [(path, entry) for path, entry in entries(remote) if stage_cmd_part in entry["cmd"]
             and all(entry.get("params", {}).get("params.yaml", {}).get(k) == v for k, v in (params or {}).items())]
    assert len(found) == 1, [path for path, _ in found]
    return found[0]


def put_object(remote, content):
    """Store ``content`` on ``remote`` as DVC names objects; its md5."""
    md5 = hashlib.md5(content).hexdigest()
    path = Path(remote, "files/md5", md5[:2], md5[2:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return md5


def rewrite(path, entry, refile):
    """Write ``entry`` over the entry file ``path``; with ``refile``, file it under the key and name that its new
    content hashes to, as DVC would have, so that only checks against dvc.yaml and the objects can refuse it."""
    if refile:
        key, value = dvc_internals.entry_hashes(entry)
        path.unlink()
        path = path.parents[2] / key[:2] / key / value
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        YAML(typ="safe").dump(entry, f)
    return path


def local_entries(root):
    return {path.name for path in (root / ".dvc/cache/runs").glob("*/*/*")}


def planted_anywhere(root):
    return [path for path in root.rglob("*") if path.is_file() and ".dvc" not in path.parts
            and ".git" not in path.parts and path.read_bytes() == PLANTED]


@pytest.mark.parametrize("stage, planted, refile, where", [
    ("stages/train.py nn_xavier", "src/sitecustomize.py", False, "folder"),
    ("stages/train.py nn_xavier", "src/sitecustomize.py", True, "folder"),
    ("stages/train.py dnn_dropout", "src/mnist_dnn/__init__.py", True, "s3"),
    ("stages/evaluate.py dnn_dropout --model", "stages/usercustomize.py", False, "folder"),
    ("stages/evaluate.py dnn_dropout --model", "stages/usercustomize.py", True, "s3"),
    ("stages/prepare.py", "data/prepared/extra.pth", True, "folder"),
], ids=["train-in-place", "train-refiled", "train-refiled-s3", "evaluate-in-place", "evaluate-refiled-s3",
        "prepare-refiled"])
def test_an_entry_with_a_planted_out_is_refused_and_nothing_reaches_the_workspace(
    origin, remote, tmp_path, request, stage, planted, refile, where
):
    path, entry = entry_of(remote, stage)
    entry["outs"].append({"path": planted, "hash": "md5", "md5": put_object(remote, PLANTED), "size": len(PLANTED)})
    bad = rewrite(path, entry, refile)
    b = clone(origin, tmp_path, remote, request.getfixturevalue("s3") if where == "s3" else None)
    pulled = mnist_dnn(b, "pull-run-cache")
    assert pulled.returncode == 0, pulled.stderr
    name = stage.split("/")[1].split(".py")[0]
    [line] = refusals(pulled)
    assert f" of {name}" in line and planted in line
    assert bad.name not in local_entries(b)  # removed from the local cache
    tracked = (b / planted).read_bytes() if (b / planted).exists() else None  # a file of git's, or none
    run(["dvc", "repro"], b)
    assert (b / planted).read_bytes() == tracked if tracked else not (b / planted).exists()
    assert planted_anywhere(b) == []
    assert "up to date" in run(["dvc", "status"], b)


@pytest.mark.parametrize("change", ["dropped out", "edited dep", "edited params"])
def test_an_entry_whose_deps_params_or_outs_differ_from_dvc_yaml_or_its_key_is_refused(origin, remote, tmp_path,
                                                                                        change):
    path, entry = entry_of(remote, "stages/train.py nn_xavier")
    if change == "dropped out":
        entry["outs"] = [out for out in entry["outs"] if not out["path"].startswith(f"{paths.MODELS}/")]
        fragment = f"{paths.model_file('nn_xavier')} is missing from the outs"
    elif change == "edited dep":
        entry["deps"][0]["md5"] = "0" * 32
        fragment = "do not match the key"
    else:
        entry["params"]["params.yaml"]["optimizer"]["lr"] = 0.5
        fragment = "do not match the key"
    rewrite(path, entry, refile=False)
    b = clone(origin, tmp_path, remote)
    pulled = mnist_dnn(b, "pull-run-cache")
    assert pulled.returncode == 0
    [line] = refusals(pulled)
    assert "of train@nn_xavier" in line and fragment in line


def test_a_folder_object_listing_a_path_out_of_its_folder_is_refused(origin, remote, tmp_path):
    path, entry = entry_of(remote, "stages/train.py dnn_dropout")
    plots = next(out for out in entry["outs"] if out["md5"].endswith(".dir"))
    listing = json.dumps([{"md5": put_object(remote, PLANTED), "relpath": "../../../../src/sitecustomize.py"}])
    md5 = put_object(remote, listing.encode())
    tree = Path(remote, "files/md5", md5[:2], md5[2:])
    tree.rename(tree.with_name(tree.name + ".dir"))
    plots["md5"] = md5 + ".dir"
    rewrite(path, entry, refile=True)
    b = clone(origin, tmp_path, remote)
    pulled = mnist_dnn(b, "pull-run-cache")
    [line] = refusals(pulled)
    assert "of train@dnn_dropout" in line and "a path leading out of it" in line
    run(["dvc", "repro", "train@dnn_dropout"], b)
    assert not (b / "src/sitecustomize.py").exists() and planted_anywhere(b) == []


@pytest.fixture(scope="module")
def pushed_other_lr(origin, pushed, tmp_path_factory):
    """A copy of ``pushed`` to which a colleague who trained nn_xavier with lr 0.003 pushed that run too."""
    remote = tmp_path_factory.mktemp("other-lr") / "shared-remote"
    shutil.copytree(pushed, remote)
    a = clone(origin, remote.parent / "a", remote)
    assert mnist_dnn(a, "pull-run-cache").returncode == 0
    edit_yaml(a / "params.yaml", {"optimizer.lr": 0.003})
    assert "train@nn_xavier" in ran_stages(run(["dvc", "repro", "train@nn_xavier"], a))
    assert mnist_dnn(a, "push-run-cache").returncode == 0
    return remote


@pytest.fixture
def other_lr_run(origin, pushed_other_lr, tmp_path):
    """A folder remote of this test's own holding ``pushed_other_lr``, in which the entry of the lr 0.003 run is then
    pointed at the committed lr 0.001 model: a genuine object, of other params. The remote, the entry's path and its
    content."""
    remote = tmp_path / "shared-remote"
    shutil.copytree(pushed_other_lr, remote)
    lock = YAML(typ="safe").load(origin / "dvc.lock")
    committed = next(out for out in lock["stages"]["train@nn_xavier"]["outs"] if out["path"].endswith(".safetensors"))
    path, entry = entry_of(remote, "stages/train.py nn_xavier", {"optimizer": {"name": "adam", "lr": 0.003}})
    model = next(out for out in entry["outs"] if out["path"].endswith(".safetensors"))
    model.update(md5=committed["md5"], size=committed["size"])
    return remote, path, entry


@pytest.mark.parametrize("refile", [False, True], ids=["in-place", "refiled"])
def test_a_genuine_model_of_other_params_is_refused_by_pull_run_cache(origin, tmp_path, other_lr_run, refile):
    remote, path, entry = other_lr_run
    rewrite(path, entry, refile)
    b = clone(origin, tmp_path / "b", remote)
    edit_yaml(b / "params.yaml", {"optimizer.lr": 0.003})
    pulled = mnist_dnn(b, "pull-run-cache")
    assert pulled.returncode == 0
    expected = f"{paths.model_file('nn_xavier')} was trained with optimizer.lr 0.001, but the entry says 0.003"
    [line] = refusals(pulled)
    assert ("of train@nn_xavier: " + expected if refile else "of train@nn_xavier: its outs do not match") in line
    output = run(["dvc", "repro", "evaluate@nn_xavier"], b)
    assert "train@nn_xavier" in ran_stages(output)  # trained again, not restored
    record = json.loads((b / "metrics/eval/nn_xavier.json").read_text())["trained_with"]
    assert record["params"]["optimizer"]["lr"] == 0.003


def test_a_model_of_other_params_that_plain_dvc_repro_pull_serves_is_refused_where_it_is_used(
    origin, tmp_path, other_lr_run
):
    remote, path, entry = other_lr_run
    rewrite(path, entry, refile=False)
    b = clone(origin, tmp_path / "b", remote)
    edit_yaml(b / "params.yaml", {"optimizer.lr": 0.003})
    output = run(["dvc", "repro", "--pull", "train@nn_xavier"], b)  # DVC trusts the entry: the lr 0.001 model arrives
    assert "Stage 'train@nn_xavier' is cached - skipping run" in output
    expected = "trained with optimizer.lr 0.001, but params.yaml has 0.003"
    evaluate = subprocess.run(["dvc", "repro", "--force", "--single-item", "evaluate@nn_xavier"], cwd=b,
                              env=pipeline_env(), capture_output=True, text=True, timeout=600)
    assert evaluate.returncode != 0 and expected in evaluate.stdout + evaluate.stderr
    assert "Traceback" not in evaluate.stdout + evaluate.stderr
    predict = mnist_dnn(b, "predict", "--variant", "nn_xavier", "--index", "0")
    assert predict.returncode == 2 and expected in predict.stderr and len(predict.stderr.splitlines()) == 1


@pytest.mark.parametrize("odd", ["fifo", "link out of the remote"])
def test_an_entry_that_is_a_fifo_or_a_link_out_of_the_remote_is_refused_unread_and_unquoted(origin, remote, tmp_path,
                                                                                           odd):
    path, _ = entry_of(remote, "stages/train.py nn_xavier")
    path.unlink()
    secret = tmp_path / "account.txt"
    secret.write_text("root:x:0:0:a line that must never be echoed\n")
    if odd == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(secret)
    b = clone(origin, tmp_path, remote)
    pulled = mnist_dnn(b, "pull-run-cache")  # reading the FIFO would never end
    assert pulled.returncode == 2 and pulled.stderr.count("\n") == 1
    assert pulled.stderr.endswith(f"{path}: not a regular file, in the remote's run-cache: remove it (nothing was "
                                  "pulled)\n")
    assert "never be echoed" not in pulled.stdout + pulled.stderr and local_entries(b) == set()
