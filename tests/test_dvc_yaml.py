"""dvc.yaml against the code: every module a stage imports, directly or not, is a dependency of that stage; and the
model registry's five models."""

import ast

import pytest
from dvc.repo import Repo
from ruamel.yaml import YAML

from helpers import REPO, VARIANTS

PACKAGE = REPO / "src" / "mnist_dnn"


def module_file(name):
    """The file of module ``mnist_dnn[.x]``."""
    parts = name.split(".")[1:]
    return PACKAGE.joinpath(*parts).with_suffix(".py") if parts else PACKAGE / "__init__.py"


def imported_modules(path):
    """The mnist_dnn modules that the file at ``path`` imports anywhere in it, functions included."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mnist_dnn"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mnist_dnn":
            modules.add(node.module)
            if node.module == "mnist_dnn":  # from mnist_dnn import data, files
                modules |= {f"mnist_dnn.{alias.name}" for alias in node.names}
    return {parent for m in modules for parent in _with_packages(m)}


def _with_packages(module):
    """``module`` and the packages Python imports first to import it (``mnist_dnn.x`` → itself, ``mnist_dnn``)."""
    parts = module.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def code_files(script):
    """``script`` and the file of every mnist_dnn module it imports, directly or not, relative to the repo."""
    seen, todo = set(), set(imported_modules(script))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo |= imported_modules(module_file(module))
    return {script.relative_to(REPO).as_posix()} | {module_file(m).relative_to(REPO).as_posix() for m in seen}


def python_stages():
    """Each stage definition of dvc.yaml (one for all items of a foreach or matrix): name, script, deps."""
    stages = YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["stages"]
    definitions = {name: stage.get("do", stage) for name, stage in stages.items()}
    return [(name, REPO / d["cmd"].split()[1], set(d["deps"])) for name, d in definitions.items()]


STAGES = python_stages()


def test_every_stage_script_is_found():
    scripts = {script.name for _, script, _ in STAGES}
    assert scripts == {path.name for path in (REPO / "stages").glob("*.py")}


@pytest.mark.parametrize("name, script, deps", STAGES, ids=[name for name, _, _ in STAGES])
def test_stage_deps_list_exactly_the_code_it_runs(name, script, deps):
    listed = {dep for dep in deps if dep.startswith(("src/", "stages/"))}
    expected = code_files(script)
    assert listed == expected, f"{name}: missing {sorted(expected - listed)}, not imported {sorted(listed - expected)}"


def test_the_import_walk_sees_imports_inside_functions(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("import os\n\ndef main():\n    from mnist_dnn.training import train\n")
    assert imported_modules(script) == {"mnist_dnn", "mnist_dnn.training"}


def test_the_import_walk_follows_imports_of_imports():
    files = code_files(REPO / "stages/train.py")
    assert "src/mnist_dnn/optimizers.py" in files  # stages/train.py → mnist_dnn.training → mnist_dnn.optimizers
    assert "src/mnist_dnn/__init__.py" in files


def test_dvc_yaml_declares_the_five_models_for_the_model_registry():
    artifacts = {name: a for arts in Repo(str(REPO)).artifacts.read().values() for name, a in arts.items()}
    assert set(artifacts) == set(VARIANTS)
    for name, artifact in artifacts.items():
        assert (artifact.path, artifact.type) == (f"models/{name}.safetensors", "model")
        assert artifact.desc and artifact.labels
