"""dvc.yaml against the code and params.yaml: every module a stage imports, directly or not, is a dependency of that
stage (`make deps` writes them); a train stage per variant, reading keep_prob exactly when it has dropout; and a
model registry entry per variant."""

import json
import shutil
from pathlib import Path

import pytest
from dvc.repo import Repo
from ruamel.yaml import YAML

from helpers import DROPOUT_VARIANT, REPO, VARIANTS, run
from mnist_dnn import paths
from mnist_dnn.lecture.config import load_params
from mnist_dnn.tools import stage_deps
from mnist_dnn.tools.dvc_internals import ParamsDependency
from mnist_dnn.tools.stage_deps import code_files, imported_modules, script_of


def python_stages():
    """Each stage definition of dvc.yaml (one for all items of a foreach or matrix): name, script, deps."""
    pipeline = YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())
    return [(name, script_of(d), d["deps"]) for name, d in stage_deps.stage_definitions(pipeline).items()]


STAGES = python_stages()


def test_every_stage_script_is_found():
    scripts = {Path(script).name for _, script, _ in STAGES}
    assert scripts == {path.name for path in (REPO / "stages").glob("*.py")}


@pytest.mark.parametrize("name, script, deps", STAGES, ids=[name for name, _, _ in STAGES])
def test_stage_deps_list_exactly_the_code_it_runs(name, script, deps):
    listed = [dep for dep in deps if dep.startswith(stage_deps.CODE)]
    expected = code_files(REPO, script)
    assert listed == expected, (f"{name}: missing {sorted(set(expected) - set(listed))}, not imported "
                                f"{sorted(set(listed) - set(expected))}, or out of order; run `make deps`")


def test_the_import_walk_sees_imports_inside_functions(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("import os\n\ndef main():\n    from mnist_dnn.lecture.training import train\n")
    # and the name imported, which may be a module (code_files keeps those that are)
    assert imported_modules(script) == {"mnist_dnn", "mnist_dnn.lecture", "mnist_dnn.lecture.training",
                                        "mnist_dnn.lecture.training.train"}


def test_the_import_walk_follows_imports_of_imports():
    files = code_files(REPO, "stages/train.py")
    assert "src/mnist_dnn/lecture/optimizers.py" in files  # stages/train.py → lecture.training → lecture.optimizers
    assert "src/mnist_dnn/__init__.py" in files


@pytest.fixture
def project(tmp_path):
    """A copy of this project's dvc.yaml and code."""
    for name in ("src", "stages"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    return tmp_path


def test_make_deps_adds_a_new_import_to_each_stage_that_runs_it_and_keeps_the_rest(project):
    before = (project / "dvc.yaml").read_text()
    assert stage_deps.write_deps(project) == []
    assert (project / "dvc.yaml").read_text() == before  # a round trip changes nothing, comments included
    (project / "src/mnist_dnn/added.py").write_text('"""A new module."""\n')
    models = project / "src/mnist_dnn/lecture/models.py"
    models.write_text(models.read_text() + "\nfrom mnist_dnn import added  # noqa: E402\n")
    changed = stage_deps.write_deps(project)
    assert "train" in changed and "evaluate" in changed and "download" not in changed
    after = (project / "dvc.yaml").read_text()
    pipeline = YAML(typ="safe", pure=True).load(after)
    for name, definition in stage_deps.stage_definitions(pipeline).items():
        uses = "src/mnist_dnn/lecture/models.py" in definition["deps"]
        assert ("src/mnist_dnn/added.py" in definition["deps"]) == uses, name
    assert [line for line in after.splitlines() if "#" in line] == [line for line in before.splitlines() if "#" in line]
    assert stage_deps.write_deps(project) == [] and (project / "dvc.yaml").read_text() == after  # idempotent


def keep_prob_problems(root):
    """Why the train stages of the project at ``root`` do not match its params.yaml's variants; [] when they do.

    A variant with dropout must read keep_prob, so that `dvc exp run -S keep_prob=…` retrains it, and only such a one.
    """
    params = load_params(Path(root, "params.yaml"))
    with Repo(str(root)) as repo:
        read = {
            stage.name.removeprefix("train@"): {key for dep in stage.deps if isinstance(dep, ParamsDependency)
                                                 for key in dep.params}
            for stage in repo.index.stages if stage.name.startswith("train@")
        }
    if list(read) != list(params.variants):
        return [f"dvc.yaml trains {list(read)}, but params.yaml's variants are {list(params.variants)}"]
    return [
        f"train@{name}: {'does not read' if variant.dropout else 'reads'} keep_prob, but the variant "
        f"{'has' if variant.dropout else 'has no'} dropout: set `reads: {'keep_prob' if variant.dropout else 'train'}` "
        "on its foreach line in dvc.yaml"
        for name, variant in params.variants.items()
        if ("keep_prob" in read[name]) != variant.dropout
    ]


def test_each_dropout_variant_and_only_such_a_one_reads_keep_prob():
    assert keep_prob_problems(REPO) == []


def test_a_dropout_variant_that_does_not_read_keep_prob_is_named(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path)
    Repo.init(str(tmp_path), no_scm=True).close()
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace(f"{DROPOUT_VARIANT}: {{reads: keep_prob}}",
                                                     f"{DROPOUT_VARIANT}: {{reads: train}}"))
    (problem,) = keep_prob_problems(tmp_path)
    assert problem.startswith(f"train@{DROPOUT_VARIANT}: does not read keep_prob")


def test_dvc_yaml_declares_a_model_per_variant_for_the_model_registry():
    artifacts = {name: a for arts in Repo(str(REPO)).artifacts.read().values() for name, a in arts.items()}
    assert set(artifacts) == set(VARIANTS)
    for name, artifact in artifacts.items():
        assert (artifact.path, artifact.type) == (paths.model_file(name).as_posix(), "model")
        assert artifact.desc and artifact.labels


def test_dvc_plots_show_draws_the_five_variants_together_beside_the_confusion_matrices():
    """Each top-level plot is one chart with a line per variant, from that variant's training log, epoch by epoch."""
    shown = json.loads(run(["dvc", "plots", "show", "--json"], REPO))["data"]
    epochs = load_params(REPO / "params.yaml").train.epochs
    for name, column in [("variants_val_accuracy", "accuracy"), ("variants_train_cost", "loss_after_step")]:
        [chart] = shown[name]
        rows = chart["content"]["data"]["values"]
        lines = {row["filename"].split("/")[0] for row in rows}
        assert lines == set(VARIANTS), name
        assert sorted(int(row["step"]) for row in rows) == sorted(list(range(1, epochs + 1)) * len(VARIANTS))
        assert all(float(row[column]) > 0 for row in rows)
    confusion = YAML(typ="safe").load(REPO / "dvc.yaml")["vars"][0]["confusion"]
    assert {f"{confusion}/{variant}.csv" for variant in VARIANTS} <= set(shown)
