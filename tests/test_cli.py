"""The `mnist-dnn` command itself: --version, each subcommand's help, and a missing optional extra in one line."""

import subprocess
import sys
from importlib.metadata import version

import pytest

from helpers import REPO, pipeline_env, run
from mnist_dnn.cli import main


def test_version_is_the_installed_packages(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"mnist-dnn {version('mnist-dnn')}\n"


@pytest.mark.parametrize("command, default", [
    ("predict", "(default: 777)"), ("repro", "(default: all)"), ("push-run-cache", "(default: the default remote)"),
    ("pull-run-cache", "(default: the default remote)"), ("verify-cache", None),
])
def test_each_subcommand_says_what_it_does_and_shows_its_defaults(capsys, command, default):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    page = capsys.readouterr().out
    summary = page.split("\n\n")[1]  # usage, then the description
    assert exited.value.code == 0 and len(summary.split()) >= 8, page
    assert default is None or default in " ".join(page.split())


def without(module, *argv, cwd):
    """`mnist-dnn argv` in ``cwd`` in a Python where ``module`` cannot be imported, as without its extra."""
    code = f"import sys; sys.modules[{module!r}] = None; from mnist_dnn.cli import main; main({list(argv)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=pipeline_env(), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_without_ray_a_run_is_one_line_naming_the_extra():
    result = without("ray", "repro", "--force", "download", cwd=REPO)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("error: the ray extra is not installed: pip install 'mnist-dnn[ray]' (in a clone, "
                             "`make install` installs every extra)\n")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["push-run-cache", "pull-run-cache"])
def test_without_dvc_s3_an_s3_remote_is_one_line_naming_the_extra(tmp_path, command):
    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    run(["dvc", "remote", "add", "-d", "store", "s3://bucket/path"], tmp_path)
    result = without("dvc_s3", command, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("error: the s3 extra is not installed: pip install 'mnist-dnn[s3]' (in a clone, "
                             "`make install` installs every extra)\n")


@pytest.mark.parametrize("argv, says", [
    (["repro", "--jobs", "abc"], "error: mnist-dnn repro: argument --jobs/-j: invalid int value: 'abc' (see --help)\n"),
    (["predict", "--index", "abc"],
     "error: mnist-dnn predict: argument --index: invalid int value: 'abc' (see --help)\n"),
    (["nope"], "error: mnist-dnn: argument command: invalid choice: 'nope'"),
])
def test_a_usage_error_is_one_line(capsys, argv, says):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith(says) and err.count("\n") == 1
