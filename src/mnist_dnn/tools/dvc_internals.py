"""DVC's internals, behind one door: the run-cache's folder, entries, hashes and transfers, and the objects the entries
name (sharing.py); the config of a copy of the workspace (parallel.py). DVC's public API (the CLI, `dvc.api`, `Repo`'s
verbs) has none of them, so only the dvc of constraints.txt is known to have them: an upgrade that moves one fails at
import, naming it and DVC's version (tests/test_dvc_internals.py checks each one)."""

import copy
import importlib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

USED = [  # (module, name): every name this module takes from DVC and its libraries (and StageCache's cache_dir, an
    # attribute of its instances: tests/test_dvc_internals.py checks it on a repo)
    ("dvc.stage.cache", "_get_cache_hash"),
    ("dvc.stage.cache", "StageCache.get_used_objs"),
    ("dvc.stage.cache", "StageCache.transfer"),
    ("dvc.data_cloud", "DataCloud.get_remote_odb"),
    ("dvc.data_cloud", "DataCloud.push"),
    ("dvc.data_cloud", "DataCloud.pull"),
    ("dvc.schema", "COMPILED_LOCK_FILE_STAGE_SCHEMA"),
    ("voluptuous", "Invalid"),
    ("dvc.config", "Config"),
    ("dvc.config", "Config.edit"),
    ("dvc.dependency.param", "ParamsDependency"),
    ("dvc.exceptions", "CollectCacheError"),
    ("dvc.fs", "LocalFileSystem"),
    ("dvc_data.hashfile.hash", "file_md5"),
    ("dvc_objects.fs.utils", "tmp_fname"),
]


def resolve(module, name):
    """``module``'s ``name`` (dotted for a class's attribute); an ImportError naming it and DVC's version if gone."""
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        return found
    except (ImportError, AttributeError):
        raise ImportError(f"DVC {version('dvc')} has no {module}.{name}, which mnist_dnn.tools.dvc_internals "
                          "uses: install the dvc that constraints.txt pins") from None


def missing(used=USED):
    """The message of each name of ``used`` that the installed DVC lacks; empty when it has them all."""
    found = []
    for module, name in used:
        try:
            resolve(module, name)
        except ImportError as err:
            found.append(str(err))
    return found


_get_cache_hash = resolve("dvc.stage.cache", "_get_cache_hash")
LOCK_ENTRY_SCHEMA = resolve("dvc.schema", "COMPILED_LOCK_FILE_STAGE_SCHEMA")  # raises Invalid
Invalid = resolve("voluptuous", "Invalid")  # what DVC's schemas raise
ParamsDependency = resolve("dvc.dependency.param", "ParamsDependency")
Config = resolve("dvc.config", "Config")  # Config(dvc_dir=…).edit("local"): a project's .dvc/config.local
CollectCacheError = resolve("dvc.exceptions", "CollectCacheError")  # an entry's folder object is missing
LocalFileSystem = resolve("dvc.fs", "LocalFileSystem")
file_md5 = resolve("dvc_data.hashfile.hash", "file_md5")
tmp_fname = resolve("dvc_objects.fs.utils", "tmp_fname")  # how DVC names a file it is still writing


def entry_hashes(entry):
    """The (key, value) a run-cache entry is filed under: hashes of its cmd, deps and params, and of all of it."""
    return _get_cache_hash(copy.deepcopy(entry), key=True), _get_cache_hash(copy.deepcopy(entry))


def run_cache_dir(repo):
    """The local run-cache: files runs/<key[:2]>/<key>/<value>."""
    return Path(repo.stage_cache.cache_dir)


def entry_objects(repo, entry_ids):
    """The objects that the run-cache entries ``entry_ids`` ((key, value) each) name, by object store."""
    return repo.stage_cache.get_used_objs(entry_ids)


def push_objects(repo, objs, remote):
    """Upload the cache objects ``objs`` to ``remote`` (None: the default); DVC's result (transferred, failed)."""
    return repo.cloud.push(objs, remote=remote)


def pull_objects(repo, objs, remote):
    """Download the objects ``objs`` from ``remote`` into the local cache; DVC's result (transferred, failed)."""
    return repo.cloud.pull(objs, remote=remote)


def fetch_entries(repo, remote, folder):
    """Download every run-cache entry of ``remote`` into ``folder`` (as runs/<key[:2]>/<key>/<value>), not into the
    local run-cache; yield each one's (key, value)."""
    odb = repo.cloud.get_remote_odb(remote, "pull-run-cache", hash_name="md5-dos2unix")
    yield from repo.stage_cache.transfer(odb, SimpleNamespace(fs=LocalFileSystem(), path=str(folder)))


def local_remote_folder(repo, remote):
    """The folder of ``remote`` (the default one if None) where it is on this machine's file system; else None."""
    odb = repo.cloud.get_remote_odb(remote, "pull-run-cache", hash_name="md5-dos2unix")
    return Path(odb.path) if isinstance(odb.fs, LocalFileSystem) else None


def object_md5(repo, path):
    """The md5 of the local cache's object at ``path``, as DVC hashes it."""
    odb = repo.cache.local
    return file_md5(path, odb.fs, name=odb.hash_name)
