"""src/mnist_dnn/tools/dvc_internals.py: the installed DVC has every internal name this project uses, and a name it
lacks is reported with DVC's version."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from dvc.repo import Repo

from mnist_dnn.tools import dvc_internals


def test_the_installed_dvc_has_every_internal_name_used(tmp_path):
    assert dvc_internals.missing() == []
    with Repo.init(str(tmp_path), no_scm=True) as repo:
        try:
            folder = dvc_internals.run_cache_dir(repo)
        except AttributeError as err:
            pytest.fail(f"DVC {version('dvc')}: {err}")
    assert folder == tmp_path / ".dvc/cache/runs"


def test_a_name_dvc_moved_is_named_with_dvcs_version():
    gone = [("dvc.stage.cache", "StageCache.transfer_all"), ("dvc.schemata", "LOCK"), ("dvc.schema", "LOCK")]
    assert [message.split(", which")[0] for message in dvc_internals.missing(gone)] == [
        f"DVC {version('dvc')} has no {module}.{name}" for module, name in gone]
    with pytest.raises(ImportError, match=r"install the dvc that constraints.txt pins$"):
        dvc_internals.resolve(*gone[0])


def test_every_name_resolved_at_import_is_listed():
    """Each name the module resolves at import is one of USED, which missing() and the first test go through."""
    source = Path(dvc_internals.__file__).read_text()
    resolved = set(re.findall(r'resolve\("([\w.]+)", "([\w.]+)"\)', source))
    assert len(resolved) >= 5 and resolved <= set(dvc_internals.USED)
