import io
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mnist_dnn.config import load_params
from mnist_dnn.errors import UserError

PARAMS = Path(__file__).parents[1] / "params.yaml"
VARIANTS = ["softmax", "nn_normal", "nn_xavier", "dnn", "dnn_dropout"]


def real_params():
    return YAML(typ="safe", pure=True).load(PARAMS.read_text())


def write_params(path, raw):
    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(raw, buf)
    path.write_text(buf.getvalue())
    return path


def test_real_params_load():
    params = load_params(PARAMS)
    assert list(params.variants) == VARIANTS
    assert params.dropout_p("dnn_dropout") == pytest.approx(1 - params.keep_prob)
    assert params.dropout_p("dnn_dropout") > 0
    for name in VARIANTS[:-1]:
        assert params.dropout_p(name) == 0


def test_copied_params_load_unchanged(tmp_path):
    assert load_params(write_params(tmp_path / "params.yaml", real_params())) == load_params(PARAMS)


def set_key(raw, key, value):
    *parents, last = key.split(".")
    for part in parents:
        raw = raw[part]
    raw[last] = value


def del_key(raw, key):
    *parents, last = key.split(".")
    for part in parents:
        raw = raw[part]
    del raw[last]


@pytest.mark.parametrize(
    "key, value",
    [
        ("keep_prob", 0),
        ("keep_prob", 1.5),
        ("optimizer.lr", 0),
        ("optimizer.lr", -1),
        ("train.epochs", 0),
        ("train.batch_size", 0),
        ("optimizer.name", "nope"),
        ("variants.dnn.init", "nope"),
        ("variants.nn_normal.hidden", [0]),
        ("train.learning_rate", 0.001),  # not a key of train
        ("optimizer_study.target_accuracy", 1.5),
        ("optimizer_study.optimizers.ftrl.lr", 0),
    ],
)
def test_bad_value_is_one_line_user_error_naming_key(tmp_path, key, value):
    raw = real_params()
    set_key(raw, key, value)
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    message = str(info.value)
    assert "\n" not in message
    assert key in message


@pytest.mark.parametrize(
    "key, value, expected",
    [("momentum", 0.9, "unexpected keyword argument 'momentum'"), ("betas", [0.9, 1.5], "Invalid beta parameter")],
)
def test_hyperparameters_are_checked_by_the_optimizer_class_itself(tmp_path, key, value, expected):
    raw = real_params()
    raw["optimizer"][key] = value
    with pytest.raises(UserError, match=rf"^[^\n]*params.yaml: optimizer: adam: .*{expected}"):
        load_params(write_params(tmp_path / "params.yaml", raw))


def test_extra_optimizer_hyperparameters_reach_the_optimizer(tmp_path):
    raw = real_params()
    raw["optimizer"] = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    assert load_params(write_params(tmp_path / "params.yaml", raw)).optimizer.hyperparameters == {"momentum": 0.9}


@pytest.mark.parametrize("key", ["optimizer.lr", "keep_prob", "variants.dnn.init", "data.val_size"])
def test_missing_key_is_one_line_user_error_naming_key(tmp_path, key):
    raw = real_params()
    del_key(raw, key)
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    message = str(info.value)
    assert "\n" not in message
    assert key in message


def test_yaml_syntax_error_is_one_line_user_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: [0.001\n  epochs: 15\n")
    with pytest.raises(UserError) as info:
        load_params(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_one_line_user_error(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(UserError) as info:
        load_params(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_variant_names_known_variants():
    params = load_params(PARAMS)
    with pytest.raises(UserError) as info:
        params.variant("nope")
    assert "nope" in str(info.value)
    for name in VARIANTS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "text, section, key, expected", [("1e-3", "optimizer", "lr", 0.001), ("010", "train", "seed", 10)]
)
def test_yaml_read_as_yaml_1_2(tmp_path, text, section, key, expected):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string and 010 as octal 8; YAML 1.2 (ruamel, DVC) as 0.001 and 10
    lines = [f"  {key}: {text}" if line.startswith(f"  {key}:") else line for line in PARAMS.read_text().splitlines()]
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    value = getattr(getattr(load_params(path), section), key)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("variant, expected", [("nope", "not a variant: nope"), ("dnn_dropout", "uses dropout")])
def test_optimizer_study_trains_an_existing_variant_without_dropout(tmp_path, variant, expected):
    raw = real_params()
    raw["optimizer_study"]["variant"] = variant
    with pytest.raises(UserError, match=rf"optimizer_study: variant: .*{expected}"):
        load_params(write_params(tmp_path / "params.yaml", raw))


def test_unknown_optimizer_study_entry_names_the_known_ones():
    study = load_params(PARAMS).optimizer_study
    with pytest.raises(UserError, match="unknown optimizer_study entry 'nope' .*adam"):
        study.optimizer("nope")
    assert study.optimizer("momentum").hyperparameters == {"momentum": 0.9}


@pytest.mark.parametrize(
    "seeds, expected", [([-1], "distinct and >= 0"), ([1, 1], "distinct and >= 0"), ([777], "777 is train.seed")]
)
def test_extra_seeds_must_be_new_distinct_seeds(tmp_path, seeds, expected):
    raw = real_params()
    raw["extra_seeds"] = seeds
    with pytest.raises(UserError, match=rf"params.yaml: extra_seeds: .*{expected}"):
        load_params(write_params(tmp_path / "params.yaml", raw))
