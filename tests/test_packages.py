"""src/mnist_dnn/ shows its parts: a handful of top-level modules that every part uses, then the sub-packages, each
importing only from itself and the parts below it."""

import ast

import pytest

from helpers import REPO
from mnist_dnn.tools import stage_deps

PACKAGE = REPO / "src/mnist_dnn"
# Each part and its floor: a module may import from its own part and from those on lower floors.
FLOORS = {"errors": 0, "kinds": 0, "paths": 0, "stage": 1, "lecture": 2, "results": 3, "tools": 4, "cli": 5}
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py")


def part(path):
    """The part that the file ``path`` under src/mnist_dnn/ belongs to: its sub-package, or its own name at the top."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_files(path):
    """The files of the mnist_dnn modules that ``path`` imports, packages' __init__.py left out."""
    modules = stage_deps.imported_modules(path)
    files = {stage_deps.module_file(REPO, module) for module in modules if module.count(".") >= 1}
    return sorted(file for file in files if file.is_file() and file.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=[path.relative_to(PACKAGE).as_posix() for path in MODULES])
def test_a_module_imports_only_from_its_part_and_the_parts_below(path):
    upward = [file.relative_to(PACKAGE).as_posix() for file in imported_files(path)
              if FLOORS[part(file)] > FLOORS[part(path)]]
    assert upward == [], f"{part(path)} (floor {FLOORS[part(path)]}) imports from a higher part"


def test_the_top_level_holds_only_the_cli_and_what_every_part_uses():
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == [
        "__init__.py", "cli.py", "errors.py", "kinds.py", "paths.py"]
    assert {part(path) for path in MODULES} == set(FLOORS)


def test_an_upward_import_is_found(tmp_path):  # the test above has something to find
    module = tmp_path / "runtime.py"
    module.write_text("def f():\n    from mnist_dnn.tools import verify, sweep\n")
    assert [file.name for file in imported_files(module)] == ["sweep.py", "verify.py"]


def test_no_function_takes_more_than_six_arguments():
    """Arguments that travel together go in a tuple or a small dataclass. An optimizer's constructor is the exception:
    it takes its hyperparameters one by one, as torch.optim's do."""
    code = [*MODULES, *sorted((REPO / "stages").glob("*.py")), *sorted((REPO / "benchmarks").glob("*.py"))]
    crowded = []
    for path in code:
        tree = ast.parse(path.read_text())
        optimizers = {id(item) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                      and any("Optimizer" in ast.unparse(base) for base in node.bases) for item in node.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and id(node) not in optimizers:
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
                if len([name for name in names if name not in ("self", "cls")]) > 6:
                    crowded.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert crowded == []


def test_each_dependency_is_a_range_that_the_exact_pin_of_constraints_txt_satisfies():
    """pyproject.toml's ranges let the package install beside another torch; constraints.txt is the committed run's."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(line) for group in [project["dependencies"], *project["optional-dependencies"].values()]
              for line in group]
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().split() if "==" in line)
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    assert [str(req) for req in wanted if any(spec.operator == "==" for spec in req.specifier)] == []
    assert {req.name: pins.get(canonicalize_name(req.name)) for req in wanted
            if not req.specifier.contains(pins.get(canonicalize_name(req.name), "0"))} == {}
