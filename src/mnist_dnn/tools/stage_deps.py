"""``make deps``: each dvc.yaml stage's code deps, its script and every mnist_dnn module it imports, directly or not,
found in the code and written back into dvc.yaml with its comments and layout kept."""

import ast
import io
from pathlib import Path

from ruamel.yaml import YAML

from mnist_dnn.stage.runtime import ArgumentParser

CODE = ("src/", "stages/")  # deps under these folders are code, found by this module; the others are data


def module_file(root, name):
    """The file of module ``mnist_dnn[.x]`` in the project at ``root``."""
    package = Path(root, "src", *name.split("."))
    return package / "__init__.py" if package.is_dir() else package.with_suffix(".py")


def imported_modules(path):
    """The mnist_dnn modules that the file at ``path`` imports anywhere in it (functions included), with the packages
    Python imports first to import them, and each name imported from them (a module or not: code_files tells)."""
    modules = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mnist_dnn"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mnist_dnn":
            modules.add(node.module)  # and each name, which may be a module: from mnist_dnn.lecture import data
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    parts = [module.split(".") for module in modules]
    return {".".join(part[: i + 1]) for part in parts for i in range(len(part))}


def code_files(root, script):
    """``script`` and the file of every mnist_dnn module it imports, directly or not, relative to ``root``: the script
    first, then the modules sorted."""
    seen, todo = set(), imported_modules(Path(root, script))
    while todo:
        module = todo.pop()
        if module not in seen and module_file(root, module).is_file():  # not a name imported from a module
            seen.add(module)
            todo |= imported_modules(module_file(root, module))
    return [script] + sorted(module_file(root, m).relative_to(root).as_posix() for m in seen)


def stage_definitions(pipeline):
    """Each stage definition of a loaded dvc.yaml (one for all items of a foreach or matrix): name → its mapping."""
    return {name: stage.get("do", stage) for name, stage in pipeline["stages"].items()}


def script_of(definition):
    """The Python script a stage's ``cmd`` runs: ``python stages/x.py …`` → ``stages/x.py``."""
    return definition["cmd"].split()[1]


def with_code_deps(root, pipeline):
    """Set each stage's code deps in ``pipeline`` (a round-trip-loaded dvc.yaml) to the code it runs, in place, ahead
    of its other deps; return the names of the stages whose deps changed."""
    changed = []
    for name, definition in stage_definitions(pipeline).items():
        deps = definition["deps"]
        code = code_files(root, script_of(definition))
        if [dep for dep in deps if dep.startswith(CODE)] != code:
            others = [dep for dep in deps if not dep.startswith(CODE)]
            deps[:] = code + others
            changed.append(name)
    return changed


def round_trip_yaml():
    """ruamel.yaml as dvc.yaml is written: comments and flow style kept, lists indented under their key."""
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # keep every line as it is
    return yaml


def write_deps(root):
    """Rewrite ``root``'s dvc.yaml with every stage's code deps; return the names of the stages changed."""
    path, yaml = Path(root, "dvc.yaml"), round_trip_yaml()
    pipeline = yaml.load(path.read_text())
    changed = with_code_deps(root, pipeline)
    if changed:
        text = io.StringIO()
        yaml.dump(pipeline, text)
        path.write_text(text.getvalue())
    return changed


def main():
    parser = ArgumentParser(prog="python -m mnist_dnn.tools.stage_deps", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", help="the project folder")
    changed = write_deps(parser.parse_args().root)
    print(f"dvc.yaml: code deps rewritten for {', '.join(changed)}" if changed else "dvc.yaml: code deps up to date")


if __name__ == "__main__":
    main()
