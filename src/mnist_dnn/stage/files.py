"""Atomic outputs: a stage's files and folders appear together, each whole, or not at all."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from mnist_dnn.stage.runtime import signals_held


@contextlib.contextmanager
def atomic_outputs(*paths):
    """Yield a temporary path beside each of ``paths`` (files or folders); once the block has written every one of
    them, move them all into place.

    The temporary folders (``.<name>.*.tmp``, ignored by git and DVC) are removed on any exit but SIGKILL. SIGINT and
    SIGTERM (see ``runtime.run_stage``) stop the block only: they wait while a folder is made or moved, and removed.
    """
    paths = [Path(p) for p in paths]
    staging = []
    with signals_held():  # from before the first folder is made to after the last is removed
        try:
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                staging.append(Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)))
            written = [tmp / path.name for tmp, path in zip(staging, paths)]
            with signals_held(False):
                yield written
            missing = [str(path) for path, new in zip(paths, written) if not new.exists()]
            if missing:
                raise FileNotFoundError(f"outputs not written: {', '.join(missing)}")
            for path, tmp, new in zip(paths, staging, written):
                if path.is_dir():
                    os.replace(path, tmp / "previous")  # deleted with tmp, after the new one is in place
                os.replace(new, path)
        finally:
            for tmp in staging:
                shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, data):
    """Write ``data`` to ``path`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
