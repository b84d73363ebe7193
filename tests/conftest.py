"""Shared test helpers: stage commands as dvc.yaml has them, and a child process under the bad-input caps."""

import functools
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]
MEMORY_CAP = 1536 * 2**20  # the bound for any bad input: 1.5 GB, and 30 s
TIME_CAP = 30


@functools.cache
def stage_argv(name):
    """The command of DVC stage ``name`` as dvc.yaml resolves it (paths included), split into arguments."""
    with Repo(str(REPO)) as repo:
        (stage,) = repo.stage.collect(f"{REPO / 'dvc.yaml'}:{name}")
    return shlex.split(stage.cmd)


def _cap_memory():
    # RLIMIT_DATA caps the heap and private mappings, not the address space that torch's libraries reserve.
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture
def run_capped(tmp_path):
    """Run ``python -c code *args`` in ``tmp_path`` under 1.5 GB of memory and 30 s; its CompletedProcess."""

    def run(code, *args, env=None):
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIME_CAP, preexec_fn=_cap_memory,
        )

    return run
