"""Push the outputs that this clone's run-cache entries name, `cache: false` ones included; run after `dvc push --run-cache`.

DVC 3.67's `dvc push --run-cache` sends the entries (.dvc/cache/runs) and the cached outputs in dvc.lock, but not
the objects of `cache: false` outputs (the metrics and plots this project keeps in git) that an entry refers to.
Without them another clone cannot restore the stage from the run-cache (`outs_cached()` fails) and runs it again.
Usage: python .ci/push_run_cache_outputs.py [remote]
"""

import sys
from pathlib import Path

from dvc.repo import Repo


def run_cache_entries(repo):
    """(key, value) of every local run-cache entry: files runs/<key[:2]>/<key>/<value>."""
    return [(entry.parent.name, entry.name) for entry in Path(repo.stage_cache.cache_dir).glob("*/*/*")]


def push_run_cache_outputs(repo, remote=None):
    """Push every object the local run-cache entries name; return (entries, objects sent)."""
    entries = run_cache_entries(repo)
    sent = 0
    for odb, objs in repo.stage_cache.get_used_objs(entries, remote=remote).items():
        result = repo.cloud.push(objs, remote=remote, odb=odb)
        if result.failed:
            sys.exit(f"error: {len(result.failed)} run-cache outputs failed to upload; run this again")
        sent += len(result.transferred)
    return len(entries), sent


if __name__ == "__main__":
    with Repo() as repo:
        entries, sent = push_run_cache_outputs(repo, sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"{sent} outputs of {entries} run-cache entries pushed")
