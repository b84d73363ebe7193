"""src/mnist_dnn/paths.py against dvc.yaml: what `mnist-dnn predict` and the sweep read is what the stages write."""

import shutil

import pytest
from dvc.repo import Repo
from ruamel.yaml import YAML

from helpers import REPO, edit_yaml, stage_argv
from mnist_dnn import paths

CONSTANTS = {name: value for name, value in vars(paths).items() if name.isupper()}


@pytest.mark.parametrize("name", CONSTANTS)
def test_each_path_is_the_dvc_yaml_var_of_its_name(name):
    (dvc_vars,) = YAML(typ="safe", pure=True).load((REPO / "dvc.yaml").read_text())["vars"]
    assert dvc_vars.get(name.lower()) == CONSTANTS[name].as_posix()


def test_each_file_named_is_in_the_command_of_the_stage_that_writes_it(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    edit_yaml(tmp_path / "params.yaml", {"extra_seeds": [1]})  # so that dvc.yaml defines seed stages
    Repo.init(str(tmp_path), no_scm=True).close()
    assert paths.model_file("dnn").as_posix() in stage_argv("train@dnn", tmp_path)
    read_by_evaluate = {paths.model_file("dnn"), paths.eval_file("dnn"), paths.TEST_SPLIT}
    assert {path.as_posix() for path in read_by_evaluate} <= set(stage_argv("evaluate@dnn", tmp_path))
    assert paths.seed_file("dnn", 1).as_posix() in stage_argv("seed@dnn-1", tmp_path)
    assert {paths.SUMMARY.as_posix(), paths.TEST_METRICS.as_posix(), paths.NUMERICS.as_posix()} <= set(
        stage_argv("summarize", tmp_path))
    assert paths.SEED_NOISE.as_posix() in stage_argv("report", tmp_path)
