"""Atomic output writing: a file or folder appears whole or not at all."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, is_dir=False):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary folder (``.<name>.*.tmp``, ignored by git and DVC) is removed on any exit but SIGKILL.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if is_dir and path.exists():
            os.replace(path, tmp / "previous")  # deleted with tmp, after the new one is in place
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")
