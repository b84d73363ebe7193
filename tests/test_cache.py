"""A corrupt object in the DVC cache: `dvc checkout` restores it without hashing it, so the model's digest refuses it
at load, `mnist-dnn verify-cache` names it, and `mnist-dnn push-run-cache` stops before it reaches a remote. The partial
file that a failed transfer leaves in the cache is skipped, and named; a file DVC would not have named so is not."""

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from helpers import commit, pipeline_env, run
from mnist_dnn import cli, paths
from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.tools import dvc_internals

SPEC = ModelSpec(variant="softmax", hidden=(), init="normal", bias_init="normal")
MODEL = paths.model_file("softmax").as_posix()


@pytest.fixture
def mnist_dnn(capsys, monkeypatch):
    """Run ``mnist-dnn *args`` in ``root``, in this process; its exit status, stdout and stderr."""

    def run_cli(root, *args):
        monkeypatch.chdir(root)
        capsys.readouterr()
        try:
            cli.main(list(args))
            status = 0
        except SystemExit as exit:
            status = exit.code
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=out, stderr=err)

    return run_cli


def test_the_commands_that_read_only_records_import_no_torch(tmp_path):
    """torch takes 2 s to import: pull-run-cache, push-run-cache and verify-cache, which read at most a model file's
    record, never import it; nor does importing the module of `mnist-dnn repro` (which imports it to judge params.yaml
    with the params model, as the stages do)."""
    SPEC.save(SPEC.build(), tmp_path / "m.safetensors")
    code = ("import sys; from mnist_dnn import cli; from mnist_dnn.tools import parallel, sharing; "
            "record = sharing.read_record(sys.argv[1]); "
            "print(record['spec']['variant'], sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.safetensors")], capture_output=True,
                            text=True, check=True)
    assert result.stdout == "softmax []\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A git and DVC repo whose MODEL is DVC-tracked, with a default remote at ../remote (made
    once per module; each test works in its own copy)."""
    root = tmp_path_factory.mktemp("template") / "repo"
    (root / "models").mkdir(parents=True)
    run(["git", "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "remote", "add", "-d", "storage", "../remote"], root)
    SPEC.save(SPEC.build(), root / MODEL)
    run(["dvc", "add", "-q", MODEL], root)
    commit(root, "a model")
    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 6, 16, 22))  # a 1
    digit.save(root / "digit.png")
    return root


def copy_repo(template, folder):
    """A copy of ``template`` in ``folder``/repo; its remote is ``folder``/remote."""
    return Path(shutil.copytree(template, folder / "repo", symlinks=True))


@pytest.fixture
def repo(template, tmp_path):
    """A copy of the template repo; its remote, tmp_path/remote, is empty."""
    return copy_repo(template, tmp_path)


def cache_object(root):
    """The path of the model's object in the DVC cache, named by its md5."""
    md5 = (root / f"{MODEL}.dvc").read_text().split("md5: ")[1].split()[0]
    return root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]


def corrupt(path):
    """Flip one bit of a weight in ``path``, as a failing disk would, leaving it read-only as DVC keeps its objects
    (DVC takes a read-only object as verified)."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    path.chmod(0o444)


def test_a_clean_cache_is_verified(repo, mnist_dnn):
    result = mnist_dnn(repo, "verify-cache")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "1 objects in the DVC cache match the md5 they are named by\n"


def test_a_corrupt_object_restored_by_dvc_checkout_is_refused_verified_and_never_pushed(repo, tmp_path,
                                                                                         mnist_dnn):
    obj = cache_object(repo)
    corrupt(obj)
    (repo / MODEL).unlink()
    run(["dvc", "checkout"], repo)  # DVC copies the object back without hashing it
    assert "up to date" in run(["dvc", "status"], repo)  # nor does dvc status hash it again
    predicted = mnist_dnn(repo, "predict", "--model", MODEL, "--image", "digit.png")
    assert (predicted.returncode, predicted.stdout) == (2, "")
    assert predicted.stderr == (f"error: {MODEL}: weights do not match their digest (corrupt copy; run dvc checkout "
                                "--relink or dvc pull)\n")
    relative = obj.relative_to(repo)
    verified = mnist_dnn(repo, "verify-cache")
    assert verified.returncode == 2
    assert verified.stderr == (f"error: 1 of 1 objects in the DVC cache do not match the md5 they are named by "
                               f"({relative}): delete them, then `dvc pull` or `dvc repro`\n")
    pushed = mnist_dnn(repo, "push-run-cache")
    assert (pushed.returncode, pushed.stderr) == (2, verified.stderr)
    assert list((tmp_path / "remote").rglob("*")) == []  # nothing reached the remote


def test_verify_cache_outside_a_dvc_repo_is_one_line(tmp_path, mnist_dnn):
    result = mnist_dnn(tmp_path, "verify-cache")
    assert result.returncode == 2
    assert result.stderr.startswith("error: mnist-dnn verify-cache: ") and result.stderr.count("\n") == 1


def cap_file_size():
    """In the child: a write past 1 MiB fails with EFBIG, as on a full disk (SIGXFSZ ignored, so it is an error)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))


def fail_transfer(root):
    """``dvc add`` a 3 MiB file while writes past 1 MiB fail; the partial files it leaves in the cache. DVC logs the
    error, yet writes data.bin.dvc and exits 0 when the cache type is copy."""
    run(["dvc", "config", "--local", "cache.type", "copy"], root)  # a reflink would write nothing
    (root / "data.bin").write_bytes(b"\x01" * 3 * 2**20)
    added = subprocess.run(["dvc", "add", "data.bin"], cwd=root, env=pipeline_env(), preexec_fn=cap_file_size,
                           capture_output=True, text=True, timeout=120)
    assert "File too large" in added.stderr, added.stderr
    return partial_files(root)


def partial_files(root):
    """The partial files in ``root``'s DVC cache: .dvc/cache/files/md5/xx/.<token>.tmp."""
    return sorted((root / ".dvc/cache/files/md5").glob("*/.*.tmp"))


@pytest.fixture(scope="module")
def failed_template(template, tmp_path_factory):
    """The template repo after a failed transfer (fail_transfer), made once per module."""
    root = copy_repo(template, tmp_path_factory.mktemp("failed"))
    assert len(fail_transfer(root)) == 1
    return root


@pytest.fixture
def failed_repo(failed_template, tmp_path):
    """A copy of the repo after a failed transfer, and the one partial file DVC left in its cache."""
    root = copy_repo(failed_template, tmp_path)
    (partial,) = partial_files(root)
    return root, partial


def test_the_partial_file_of_a_failed_transfer_is_skipped_named_and_kept_from_the_remote(failed_repo, tmp_path,
                                                                                         mnist_dnn):
    repo, partial = failed_repo  # DVC leaves .dvc/cache/files/md5/xx/.<token>.tmp behind
    assert partial.stat().st_size == 2**20
    run(["dvc", "add", "-q", "data.bin"], repo)  # again, once there is room: the partial file stays
    assert partial.exists()
    verified = mnist_dnn(repo, "verify-cache")
    assert (verified.returncode, verified.stderr) == (0, "")
    assert verified.stdout == ("2 objects in the DVC cache match the md5 they are named by; skipped 1 partial files "
                               f"DVC left from unfinished transfers ({partial.relative_to(repo)}), safe to delete "
                               "while no DVC command runs\n")
    pushed = mnist_dnn(repo, "push-run-cache")
    assert (pushed.returncode, pushed.stderr) == (0, "")
    cache, remote = repo / ".dvc/cache", tmp_path / "remote"
    objects = sorted(path.relative_to(cache) for path in (cache / "files").rglob("*")
                     if path.is_file() and path != partial)
    assert len(objects) == 2  # the model and data.bin
    assert sorted(path.relative_to(remote) for path in remote.rglob("*") if path.is_file()) == objects  # no partial


def test_a_corrupt_object_is_reported_beside_partial_files(failed_repo, mnist_dnn):
    repo, _ = failed_repo
    obj = cache_object(repo)
    moved = obj.parent / dvc_internals.tmp_fname(obj.name)  # the name DVC's move gives an object on its way in
    moved.write_bytes(obj.read_bytes())
    corrupt(obj)
    verified = mnist_dnn(repo, "verify-cache")
    assert (verified.returncode, verified.stdout) == (2, "")
    assert verified.stderr == (f"error: 1 of 1 objects in the DVC cache do not match the md5 they are named by "
                               f"({obj.relative_to(repo)}): delete them, then `dvc pull` or `dvc repro`\n")


@pytest.mark.parametrize("name", ["ab/cdef.tmp",  # no leading dot, no token
                                  "ab/.IR4tMSlbKmqQCYX9cbnVv.tmp",  # a token one character short
                                  "ab/.IR4tMSlbKmqQCYX9cbnVvA.tmp.x",  # more after .tmp
                                  "zz/.IR4tMSlbKmqQCYX9cbnVvA.tmp"])  # not a folder of md5 prefixes
def test_a_file_named_otherwise_than_dvc_names_its_partial_files_is_reported(failed_repo, mnist_dnn, name):
    repo, partial = failed_repo
    planted = repo / ".dvc/cache/files/md5" / name
    planted.parent.mkdir(exist_ok=True)
    planted.write_bytes(partial.read_bytes())
    verified = mnist_dnn(repo, "verify-cache")
    assert (verified.returncode, verified.stdout) == (2, "")
    assert verified.stderr == (f"error: 1 of 2 objects in the DVC cache do not match the md5 they are named by "
                               f"({planted.relative_to(repo)}): delete them, then `dvc pull` or `dvc repro`\n")


@pytest.mark.parametrize("odd", ["fifo", "link to /dev/zero"])
def test_a_cache_object_that_is_a_fifo_or_a_link_is_reported_corrupt_unread(repo, odd):
    obj = cache_object(repo)
    obj.chmod(0o644)
    obj.unlink()
    if odd == "fifo":
        os.mkfifo(obj)
    else:
        obj.symlink_to("/dev/zero")
    result = subprocess.run([sys.executable, "-m", "mnist_dnn.cli", "verify-cache"], cwd=repo, env=pipeline_env(),
                            capture_output=True, text=True, timeout=120)  # reading it would never end
    assert result.returncode == 2
    assert result.stderr == (f"error: 1 of 1 objects in the DVC cache do not match the md5 they are named by "
                             f"({obj.relative_to(repo)}): delete them, then `dvc pull` or `dvc repro`\n")
