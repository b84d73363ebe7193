"""Sharing runs between machines: push the outputs that this clone's run-cache entries name, `cache: false` ones too.

DVC 3.67's `dvc push --run-cache` sends the entries (.dvc/cache/runs) and the cached outputs in dvc.lock, but not
the objects of `cache: false` outputs (the plots this project keeps in git) that an entry refers to.
Without them another clone cannot restore the stage from the run-cache (`outs_cached()` fails) and runs it again.
`mnist-dnn push-run-cache` runs `dvc push --run-cache`, then pushes those objects.

DVC trusts its cache: `dvc checkout` and `dvc push` copy an object without hashing it again (a read-only object is
taken as verified). `mnist-dnn verify-cache`, and push-run-cache before it pushes, hash every local object.
"""

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from dvc.exceptions import DvcException
from dvc.repo import Repo

from mnist_dnn import paths
from mnist_dnn.errors import UserError, one_line, printable
from mnist_dnn.lecture.model_file import read_record
from mnist_dnn.stage import provenance
from mnist_dnn.stage.yaml_file import read_yaml
from mnist_dnn.tools import dvc_internals
from mnist_dnn.tools.dvc_internals import CollectCacheError, Invalid, ParamsDependency


def run_cache_entries(repo):
    """(key, value) of every local run-cache entry: files runs/<key[:2]>/<key>/<value>."""
    return [(entry.parent.name, entry.name) for entry in dvc_internals.run_cache_dir(repo).glob("*/*/*")]


def local_outputs(repo, entry):
    """The objects that run-cache ``entry`` names and this clone's cache holds."""
    try:
        used = dvc_internals.entry_objects(repo, [entry])
    except CollectCacheError:  # an entry pulled from elsewhere, whose directory outputs this clone never had
        return set()
    return {obj for objs in used.values() for obj in objs if repo.cache.local.exists(obj.value)}


def push_run_cache_outputs(repo, remote=None):
    """Push every object the local run-cache entries name and this clone holds; return (entries, objects sent)."""
    entries = run_cache_entries(repo)
    objs = set().union(*(local_outputs(repo, entry) for entry in entries))
    result = dvc_internals.push_objects(repo, objs, remote)
    if result.failed:
        raise UserError(f"{len(result.failed)} run-cache outputs failed to upload; run this again")
    return len(entries), len(result.transferred)


# The "oid" that the cache's all() makes of a file DVC is still writing: dvc_internals.tmp_fname(prefix) is
# f"{prefix}.{token_urlsafe(16)}.tmp", beside the object: xx/.<token>.tmp, or xx/<rest>.<token>.tmp in utils.move
PARTIAL = re.compile(r"[0-9a-f]{2}([0-9a-f]{30}(\.dir)?)?\.[A-Za-z0-9_-]{22}\.tmp")


def corrupt_objects(repo):
    """The local cache's objects whose content does not hash to the md5 they are named by, how many it holds, and the
    partial files of unfinished transfers (PARTIAL), which it skips."""
    odb = repo.cache.local
    oids = list(odb.all())
    partial = sorted(odb.oid_to_path(oid) for oid in oids if PARTIAL.fullmatch(oid))
    paths = {oid: odb.oid_to_path(oid) for oid in oids if not PARTIAL.fullmatch(oid)}
    corrupt = [path for oid, path in paths.items()  # a FIFO or a link (to /dev/zero) is never read: it is corrupt
               if irregular(path) or dvc_internals.object_md5(repo, path) != oid.removesuffix(".dir")]
    return corrupt, len(paths), partial


def irregular(path):
    """Whether ``path`` is anything but a regular file (a link, a FIFO, a device), judged without following it."""
    return not stat.S_ISREG(os.lstat(path).st_mode)


def first_irregular(folder):
    """The first entry under ``folder`` (not following links) that is neither a folder nor a regular file; None."""
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent, name)
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                return path
    return None


def check_cache(repo):
    """The number of objects in the local cache and the partial files it skipped; a UserError naming the corrupt
    objects, if any."""
    corrupt, count, partial = corrupt_objects(repo)
    if corrupt:
        names = ", ".join(os.path.relpath(path) for path in corrupt)
        raise UserError(f"{len(corrupt)} of {count} objects in the DVC cache do not match the md5 they are named by "
                        f"({names}): delete them, then `dvc pull` or `dvc repro`")
    return count, partial


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
        count, partial = check_cache(repo)
    names = ", ".join(os.path.relpath(path) for path in partial)
    skipped = (f"; skipped {len(partial)} partial files DVC left from unfinished transfers ({names}), safe to delete "
               "while no DVC command runs") if partial else ""
    print(f"{count} objects in the DVC cache match the md5 they are named by{skipped}")


def push_run_cache(remote=None):
    """``dvc push --run-cache`` to ``remote`` (the default one if None), then the outputs it leaves behind; first
    checks the local cache, so that no corrupt object reaches the remote."""
    with dvc_repo("dvc push --run-cache") as repo:
        check_cache(repo)
        pushed = repo.push(remote=remote, run_cache=True)
        entries, sent = push_run_cache_outputs(repo, remote)
    print(f"{pushed} files pushed; then {sent} outputs of {entries} run-cache entries")


# ---- pull-run-cache: `dvc pull --run-cache`, trusting no entry the remote serves --------------------------------
#
# DVC files a run-cache entry under runs/<key>/<value>: key is the SHA-256 of the stage's cmd, deps, params and outs'
# paths, value that of the whole entry (dvc.stage.cache._get_cache_hash), and `dvc repro` restores the newest entry
# under its stage's key without hashing it again. So whoever can write the remote can add an out to an entry (a file
# that then lands in the workspace) or point an out at another object.

MAX_ENTRY_BYTES = 2**16  # an entry lists one stage's deps, params and outs: ~3 KB in this project


def read_entry(path):
    """The run-cache entry at ``path`` as DVC's lock schema reads it; a UserError if it is not one, which never quotes
    the file (an entry may be a copy of any file the remote's writer pointed it at)."""
    if irregular(path):
        raise UserError("not a regular file")
    if path.stat().st_size > MAX_ENTRY_BYTES:
        raise UserError(f"{path.stat().st_size:,} bytes, larger than an entry of this project can be")
    try:
        return dvc_internals.LOCK_ENTRY_SCHEMA(read_yaml(path.read_text(encoding="utf-8"), "its YAML"))
    except (UnicodeDecodeError, Invalid, UserError) as err:
        raise UserError(f"not a run-cache entry (a {type(err).__name__} reading it as DVC's lock schema)") from None


def declared(stage):
    """What dvc.yaml declares of ``stage`` in the form an entry lists it: deps' paths, params' keys by file, outs."""
    params = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
    return {
        "deps": sorted(dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)),
        "params": {dep.def_path: sorted(set(dep.params)) for dep in params},
        "outs": sorted(out.def_path for out in stage.outs),
    }


def listed(entry):
    """What ``entry`` lists, in the form of ``declared``."""
    return {
        "deps": sorted(dep["path"] for dep in entry.get("deps", [])),
        "params": {name: sorted(values) for name, values in entry.get("params", {}).items()},
        "outs": sorted(out["path"] for out in entry.get("outs", [])),
    }


def first_stranger(found, expected):
    """The first path of ``found`` (a sorted list) that is not in ``expected`` or is there twice; else one missing."""
    for i, path in enumerate(found):
        if path not in expected or path in found[:i]:
            return path
    return next((path for path in expected if path not in found), None)


def entry_refusal(entry, key, value, stages):
    """Why ``entry``, filed as runs/<key>/<value>, is not a run of a stage of dvc.yaml, as (stage, reason); None if
    it is one. ``stages`` maps each stage's command to the stage."""
    stage = stages.get(entry["cmd"])
    if stage is None:
        return None, "no stage of dvc.yaml runs its command"
    found, expected = listed(entry), declared(stage)
    for kind in ("outs", "deps"):
        stranger = first_stranger(found[kind], expected[kind])
        if stranger is not None:
            where = "is not one of" if stranger in found[kind] else "is missing from"
            return stage.addressing, f"{stranger} {where} the {kind} dvc.yaml declares"
    if found["params"] != expected["params"]:
        return stage.addressing, "its params are not the ones dvc.yaml declares"
    hashed_key, hashed_value = dvc_internals.entry_hashes(entry)
    if hashed_key != key:
        return stage.addressing, "its deps or params do not match the key it is filed under"
    if hashed_value != value:
        return stage.addressing, "its outs do not match the name it is filed under"
    return None


def recorded_trained_with(repo, path, md5):
    """The provenance record of the cached object ``md5`` of the file ``path`` (a model, or metrics that copy its
    record); None if it has none or is not cached here; a UserError if it is malformed."""
    obj = Path(repo.cache.local.oid_to_path(md5))
    if not obj.is_file():
        return None
    if PurePosixPath(path).is_relative_to(paths.MODELS) and path.endswith(".safetensors"):
        return read_record(obj)["trained_with"]
    if path.endswith(".json") and obj.stat().st_size <= MAX_ENTRY_BYTES:
        content = json.loads(obj.read_text())
        record = content.get("trained_with") if isinstance(content, dict) else None
        return None if record is None else provenance.checked(record)
    return None


def unsafe_relpath(repo, md5):
    """The first file of the cached directory object ``md5`` whose path leads out of its folder; None if none does."""
    obj = Path(repo.cache.local.oid_to_path(md5))
    if not obj.is_file():
        return None
    for item in json.loads(obj.read_text()):
        parts = PurePosixPath(item["relpath"]).parts
        if not parts or item["relpath"].startswith("/") or ".." in parts or "\\" in item["relpath"]:
            return item["relpath"]
    return None


def content_refusal(repo, entry):
    """Why the objects that ``entry`` names (fetched) contradict it; None if they do not.

    A folder out must not list a path leading out of it; a model, or metrics copying its provenance record, must have
    been trained with the params the entry lists; the records of its deps and outs must agree.
    """
    params = entry.get("params", {}).get("params.yaml", {})
    records = []
    for item in [*entry.get("deps", []), *entry.get("outs", [])]:
        md5 = item.get("md5", "")
        if md5.endswith(".dir"):
            bad = unsafe_relpath(repo, md5)
            if bad is not None:
                return f"{item['path']} lists {bad[:80]!r}, a path leading out of it"
            continue
        try:
            record = recorded_trained_with(repo, item["path"], md5)
        except (UserError, ValueError, KeyError) as err:
            return f"{item['path']}: {one_line(err)[:160]}"
        if record is None:
            continue
        records.append((item["path"], record))
        if params:
            said = {"params": {name: params.get(name) for name in record["params"]}, "seed": record["seed"]}
            difference = provenance.first_difference(record, said)
            if difference:
                name, got, want = difference
                return (f"{item['path']} was trained with {name} {provenance.shown(got)}, but the entry says "
                        f"{provenance.shown(want)}")
    if len({record["sha256"] for _, record in records}) > 1:
        return f"{' and '.join(path for path, _ in records)} were trained with other params than each other"
    return None


def stages_by_command(repo):
    """Each stage's command → the stage, for every stage of dvc.yaml."""
    return {stage.cmd: stage for stage in repo.index.stages if stage.cmd}


def file_entry(repo, staged, key, value):
    """Move the checked entry ``staged`` into the local run-cache as runs/<key>/<value>; its path there."""
    target = dvc_internals.run_cache_dir(repo) / key[:2] / key / value
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staged, target)
    return target


def unfile(filed):
    """Remove the entry ``filed`` from the local run-cache, and its key's folder if that is left empty (`dvc repro`
    fails on an empty one)."""
    filed.unlink()
    if not any(filed.parent.iterdir()):
        filed.parent.rmdir()


def fetch_outputs(repo, entry_id, remote):
    """Fetch the objects that run-cache entry ``entry_id`` (key, value) names; the number fetched."""
    fetched = 0
    try:
        for objs in dvc_internals.entry_objects(repo, [entry_id]).values():
            fetched += len(dvc_internals.pull_objects(repo, objs, remote).transferred)
    except CollectCacheError:  # a folder object the remote lacks: `dvc repro` reruns the stage
        pass
    return fetched


def take_entry(repo, staged, key, value, stages, remote):
    """File the fetched entry ``staged`` (runs/<key>/<value>) in the local run-cache with its objects, if it checks
    out; the number of objects fetched, and None or why it was refused, as (stage or None, reason)."""
    try:
        entry = read_entry(staged)
        why = entry_refusal(entry, key, value, stages)
    except UserError as err:
        return 0, (None, str(err))
    if why is not None:
        return 0, why
    filed = file_entry(repo, staged, key, value)
    fetched = fetch_outputs(repo, (key, value), remote)
    reason = content_refusal(repo, entry)
    if reason is None:
        return fetched, None
    unfile(filed)
    return fetched, (stages[entry["cmd"]].addressing, reason)


def pull_run_cache(remote=None):
    """``dvc pull --run-cache`` from ``remote`` (the default one if None), refusing every entry that is not a run of
    a stage of dvc.yaml, or whose outputs contradict it: the outputs dvc.lock (from git) names reach the workspace,
    the checked entries only the local run-cache, which `dvc repro` then restores from."""
    with dvc_repo("mnist-dnn pull-run-cache") as repo:
        stages = stages_by_command(repo)
        kept, refused, fetched = 0, 0, 0
        folder = dvc_internals.local_remote_folder(repo, remote)
        odd = folder and first_irregular(folder / "runs")
        if odd:  # DVC would read a FIFO for ever, or follow a link out of the remote
            raise UserError(f"{printable(odd)}: not a regular file, in the remote's run-cache: remove it (nothing was "
                            "pulled)")
        with tempfile.TemporaryDirectory(prefix="pull-run-cache.", dir=repo.tmp_dir) as tmp:
            for key, value in dvc_internals.fetch_entries(repo, remote, tmp):
                objects, why = take_entry(repo, Path(tmp, "runs", key[:2], key, value), key, value, stages, remote)
                fetched += objects
                if why is None:
                    kept += 1
                    continue
                refused += 1
                stage, reason = why
                print(f"refused run-cache entry {key[:12]}/{value[:12]}{f' of {stage}' if stage else ''}: {reason}",
                      file=sys.stderr)
        pulled = repo.pull(remote=remote, allow_missing=True)["stats"]  # outputs it lacks: `dvc repro` makes them
    print(f"{kept} run-cache entries fetched and checked, {refused} refused; {fetched} of their outputs fetched; "
          f"dvc pull: {pulled['fetched']} fetched, {pulled['added']} files added to the workspace")
