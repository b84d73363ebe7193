"""Sharing runs between machines: push the outputs that this clone's run-cache entries name, `cache: false` ones too.

DVC 3.67's `dvc push --run-cache` sends the entries (.dvc/cache/runs) and the cached outputs in dvc.lock, but not
the objects of `cache: false` outputs (the plots this project keeps in git) that an entry refers to.
Without them another clone cannot restore the stage from the run-cache (`outs_cached()` fails) and runs it again.
`mnist-dnn push-run-cache` runs `dvc push --run-cache`, then pushes those objects.
"""

from pathlib import Path

from dvc.exceptions import CollectCacheError, DvcException
from dvc.repo import Repo

from mnist_dnn.errors import UserError


def run_cache_entries(repo):
    """(key, value) of every local run-cache entry: files runs/<key[:2]>/<key>/<value>."""
    return [(entry.parent.name, entry.name) for entry in Path(repo.stage_cache.cache_dir).glob("*/*/*")]


def local_outputs(repo, entry):
    """The objects that run-cache ``entry`` names and this clone's cache holds."""
    try:
        used = repo.stage_cache.get_used_objs([entry])
    except CollectCacheError:  # an entry pulled from elsewhere, whose directory outputs this clone never had
        return set()
    return {obj for objs in used.values() for obj in objs if repo.cache.local.exists(obj.value)}


def push_run_cache_outputs(repo, remote=None):
    """Push every object the local run-cache entries name and this clone holds; return (entries, objects sent)."""
    entries = run_cache_entries(repo)
    objs = set().union(*(local_outputs(repo, entry) for entry in entries))
    result = repo.cloud.push(objs, remote=remote)
    if result.failed:
        raise UserError(f"{len(result.failed)} run-cache outputs failed to upload; run this again")
    return len(entries), len(result.transferred)


def push_run_cache(remote=None):
    """``dvc push --run-cache`` to ``remote`` (the default one if None), then the outputs it leaves behind."""
    try:
        with Repo() as repo:
            pushed = repo.push(remote=remote, run_cache=True)
            entries, sent = push_run_cache_outputs(repo, remote)
    except DvcException as err:
        raise UserError(f"dvc push --run-cache: {err}") from None
    print(f"{pushed} files pushed; then {sent} outputs of {entries} run-cache entries")
