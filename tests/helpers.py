"""What the test modules share: this project's files and stage commands, a stage run in this process, params edits,
commands run in a temporary copy of the project, and tiny data made here."""

import functools
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from dvc.repo import Repo
from ruamel.yaml import YAML

from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params

REPO = Path(__file__).resolve().parents[1]
MEMORY_CAP, TIME_CAP = 1536 * 2**20, 30  # the bound for any bad input: 1.5 GB, and 30 s
DELETE = object()  # as a value of set_key or edit_yaml: remove the key
PARAMS = load_params(REPO / "params.yaml")
# The end-to-end tier's run: the first 12,000 training and test images (1,000 of them for validation), 5 epochs, so
# as many steps as 1 epoch of all 55,000 (the accuracies the tests expect) in less time; and three of the study's
# optimizers (plain SGD with momentum, Adam, FTRL with its own hyperparameters), each of which tests/test_optimizers.py
# checks step by step. The full data and the whole study are make verify's.
SMALL_STUDY = ["momentum", "adam", "ftrl"]
SMALL_RUN = {"train.epochs": 5, "data.limit": 12_000, "data.val_size": 1000} | {
    f"optimizer_study.optimizers.{name}": DELETE
    for name in PARAMS.optimizer_study.optimizers
    if name not in SMALL_STUDY
}
VARIANTS = list(PARAMS.variants)  # the table's variants, in its order
# conftest's cut_project keeps two: the optimizer study's, and the dropout one (which make verify trains twice)
CUT_VARIANTS = [PARAMS.optimizer_study.variant, "dnn_dropout"]
DROPOUT_VARIANT = next(name for name, variant in PARAMS.variants.items() if variant.dropout)  # reads keep_prob


def copy_project(root):
    """Copy this project's files (tracked, and untracked ones git does not ignore) into the folder ``root``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)


@functools.cache
def stage_argv(name, root=REPO):
    """The command of DVC stage ``name`` as ``root``'s dvc.yaml resolves it (paths included), split into arguments."""
    with Repo(str(root)) as repo:
        (stage,) = repo.stage.collect(f"{root / 'dvc.yaml'}:{name}")
    return shlex.split(stage.cmd)


def run_script(monkeypatch, cwd, script, *args):
    """Run the Python file ``script`` with ``args`` in ``cwd``, in this process as `python` would; its exit status."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(script), *map(str, args)])
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit:
        return exit.code
    return 0


def run_stage(monkeypatch, cwd, name, variant=None):
    """Run DVC stage ``name``'s command in ``cwd`` with :func:`run_script`; with ``variant``, ``name`` is the stage
    for softmax (``train@softmax``) and its command is made out for ``variant``, which params.yaml may lack."""
    argv = stage_argv(name)
    if variant:
        argv = [arg.replace("softmax", variant) for arg in argv]
    _, script, *args = argv
    return run_script(monkeypatch, cwd, REPO / script, *args)


def set_key(tree, key, value):
    """Set the dotted ``key`` (``train.epochs``) of the nested mapping ``tree`` to ``value``; DELETE removes it."""
    *parents, last = key.split(".")
    for part in parents:
        tree = tree[part]
    if value is DELETE:
        del tree[last]
    else:
        tree[last] = value


def edit_yaml(path, changes):
    """Apply :func:`set_key` for each dotted key and value of ``changes`` to the YAML file ``path``, comments kept."""
    yaml = YAML()
    tree = yaml.load(path)
    for key, value in changes.items():
        set_key(tree, key, value)
    yaml.dump(tree, path)


def cut_variants(root, variants, optimizers):
    """Cut the project at ``root`` to ``variants`` of the table and ``optimizers`` of the study: the params keyed by
    either, dvc.yaml's foreach of the train stages (its own layout kept, so that the diff is the lines cut), and the
    outputs that dvc.lock names of the stages cut (their folders' hashes would count them), and their run-cache
    entries (a clone that pulls them would refuse them as runs of no stage)."""
    lock = root / "dvc.lock"
    before = YAML(typ="safe").load(lock)["stages"] if lock.exists() else {}
    yaml = YAML()
    params = yaml.load(root / "params.yaml")
    for key in ("variants", "lecture_accuracy", "lecture_cost"):  # the params keyed by variant
        params[key] = {k: params[key][k] for k in variants}
    params["optimizer_study"]["optimizers"] = {k: params["optimizer_study"]["optimizers"][k] for k in optimizers}
    yaml.dump(params, root / "params.yaml")
    yaml.indent(mapping=2, sequence=4, offset=2)
    pipeline = yaml.load(root / "dvc.yaml")
    pipeline["stages"]["train"]["foreach"] = {k: pipeline["stages"]["train"]["foreach"][k] for k in variants}
    yaml.dump(pipeline, root / "dvc.yaml")
    with Repo(str(root)) as repo:
        kept = {stage.addressing for stage in repo.index.stages}
        commands = {stage.cmd for stage in repo.index.stages}
    for entry in (root / ".dvc/cache/runs").glob("*/*/*"):
        if YAML(typ="safe").load(entry)["cmd"] not in commands:
            entry.unlink()
            if not any(entry.parent.iterdir()):
                entry.parent.rmdir()
    for out in (out for name, entry in before.items() if name not in kept for out in entry.get("outs", [])):
        path = root / out["path"]
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def pipeline_env():
    """This environment with the venv's tools first on PATH, and an absolute $MNIST_MIRROR."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if env.get("MNIST_MIRROR"):
        env["MNIST_MIRROR"] = str(Path(env["MNIST_MIRROR"]).resolve())
    return env


def run(cmd, cwd, **env):
    """Run ``cmd`` in ``cwd``, with ``env`` added to the environment; fail the test with its output if it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=pipeline_env() | env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def ran_stages(output):
    """The stages that DVC's ``output`` says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def commit(root, message):
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message], root)


def make_split(n, seed):
    """Noise images, half of them labelled 7 and brightened in the top half: learnable, and made here."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 128, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 2, (n,), dtype=torch.uint8, generator=g) * 7
    images[labels == 7, :14] += 128
    return data.to_inputs(images, "cpu"), data.to_targets(labels, "cpu")
