"""Sharing runs between machines: push the outputs that this clone's run-cache entries name, `cache: false` ones too.

DVC 3.67's `dvc push --run-cache` sends the entries (.dvc/cache/runs) and the cached outputs in dvc.lock, but not
the objects of `cache: false` outputs (the plots this project keeps in git) that an entry refers to.
Without them another clone cannot restore the stage from the run-cache (`outs_cached()` fails) and runs it again.
`mnist-dnn push-run-cache` runs `dvc push --run-cache`, then pushes those objects.

DVC trusts its cache: `dvc checkout` and `dvc push` copy an object without hashing it again (a read-only object is
taken as verified). `mnist-dnn verify-cache`, and push-run-cache before it pushes, hash every local object.
"""

import os
from contextlib import contextmanager
from pathlib import Path

from dvc.exceptions import CollectCacheError, DvcException
from dvc.repo import Repo
from dvc_data.hashfile.hash import file_md5

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


def corrupt_objects(repo):
    """The local cache's objects whose content does not hash to the md5 they are named by, and how many it holds."""
    odb = repo.cache.local
    paths = {oid: odb.oid_to_path(oid) for oid in odb.all()}
    corrupt = [path for oid, path in paths.items()
               if file_md5(path, odb.fs, name=odb.hash_name) != oid.removesuffix(".dir")]
    return corrupt, len(paths)


def check_cache(repo):
    """The number of objects in the local cache; a UserError naming the corrupt ones, if any."""
    corrupt, count = corrupt_objects(repo)
    if corrupt:
        names = ", ".join(os.path.relpath(path) for path in corrupt)
        raise UserError(f"{len(corrupt)} of {count} objects in the DVC cache do not match the md5 they are named by "
                        f"({names}): delete them, then `dvc pull` or `dvc repro`")
    return count


@contextmanager
def dvc_repo(command):
    """The DVC repo of this folder; a DvcException inside is a UserError naming ``command``."""
    try:
        with Repo() as repo:
            yield repo
    except DvcException as err:
        raise UserError(f"{command}: {err}") from None


def verify_cache():
    """Check every object of the local DVC cache against its md5, and say how many were checked."""
    with dvc_repo("mnist-dnn verify-cache") as repo:
        count = check_cache(repo)
    print(f"{count} objects in the DVC cache match the md5 they are named by")


def push_run_cache(remote=None):
    """``dvc push --run-cache`` to ``remote`` (the default one if None), then the outputs it leaves behind; first
    checks the local cache, so that no corrupt object reaches the remote."""
    with dvc_repo("dvc push --run-cache") as repo:
        check_cache(repo)
        pushed = repo.push(remote=remote, run_cache=True)
        entries, sent = push_run_cache_outputs(repo, remote)
    print(f"{pushed} files pushed; then {sent} outputs of {entries} run-cache entries")
