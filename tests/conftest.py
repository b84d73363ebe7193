"""Shared test helpers."""

import functools
import shlex
from pathlib import Path

from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def stage_argv(name):
    """The command of DVC stage ``name`` as dvc.yaml resolves it (paths included), split into arguments."""
    with Repo(str(REPO)) as repo:
        (stage,) = repo.stage.collect(name)
    return shlex.split(stage.cmd)
