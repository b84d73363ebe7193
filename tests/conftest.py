import resource
import subprocess
import sys

import pytest

MEMORY_CAP = 1536 * 2**20  # the bound for any bad input: 1.5 GB, and 30 s
TIME_CAP = 30


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
