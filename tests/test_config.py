import inspect
import io
import os
import subprocess
import sys

import pytest
import torch
from ruamel.yaml import YAML

from helpers import DELETE, DROPOUT_VARIANT, REPO, VARIANTS, set_key
from mnist_dnn.errors import UserError, quote
from mnist_dnn.lecture.config import IMPLEMENTATION_SWITCHES, load_params
from mnist_dnn.lecture.optimizers import HYPERPARAMETERS, OPTIMIZERS
from mnist_dnn.stage.yaml_file import MAX_YAML_NODES

PARAMS = REPO / "params.yaml"


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
    for name, variant in params.variants.items():
        spec = params.model_spec(name)
        assert spec.dropout_p == pytest.approx(1 - params.keep_prob if variant.dropout else 0)
        assert spec.hidden == tuple(variant.hidden)
    assert params.model_spec(DROPOUT_VARIANT).dropout_p > 0


def test_copied_params_load_unchanged(tmp_path):
    assert load_params(write_params(tmp_path / "params.yaml", real_params())) == load_params(PARAMS)


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


@pytest.mark.parametrize("optimizer, key, value, expected", [
    ("adam", "momentum", 0.9, "momentum: Extra inputs are not permitted (got 0.9)"),
    ("adam", "betas", [0.9, 1.5], "betas.1: Input should be less than 1 (got 1.5)"),
    ("adam", "betas", {"a": 0.9, "b": 0.99}, "betas: Input should be a valid list (got {'a': 0.9, 'b': 0.99})"),
    ("adam", "betas", 0.9, "betas: Input should be a valid list (got 0.9)"),
    ("adam", "betas", [0.9], "betas: List should have at least 2 items after validation, not 1 (got [0.9])"),
    ("adam", "betas", [0.9, 0.99, 0.999],
     "betas: List should have at most 2 items after validation, not 3 (got [0.9, 0.99, 0.999])"),
    ("adam", "betas", ["0.9", 0.99], "betas.0: Input should be a valid number (got '0.9')"),
    ("adam", "eps", float("inf"), "eps: Input should be a finite number (got inf)"),
    ("adam", "eps", float("nan"), "eps: Input should be a finite number (got nan)"),
    ("adam", "amsgrad", "yes", "amsgrad: Input should be a valid boolean (got 'yes')"),
    ("adam", "weight_decay", True, "weight_decay: Input should be a valid number (got True)"),
    ("sgd", "dampening", "0.1", "dampening: Input should be a valid number (got '0.1')"),
    ("sgd", "dampening", 2, "dampening: Input should be less than or equal to 1 (got 2)"),
    ("sgd", "maximize", "false", "maximize: Input should be a valid boolean (got 'false')"),
    ("sgd", "nesterov", 1, "nesterov: Input should be a valid boolean (got 1)"),
    ("sgd", "momentum", None, "momentum: Input should be a valid number (got None)"),
    ("rmsprop", "centered", [True], "centered: Input should be a valid boolean (got [True])"),
    ("ftrl", "lr_power", 0.5, "lr_power: Input should be less than or equal to 0 (got 0.5)"),
    ("adagrad_da", "l1", -1, "l1: Input should be greater than or equal to 0 (got -1)"),
])
def test_each_hyperparameter_is_checked_by_the_table(tmp_path, optimizer, key, value, expected):
    raw = real_params()
    raw["optimizer"] = {"name": optimizer, "lr": 0.01, key: value}
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value) == f"{tmp_path / 'params.yaml'}: optimizer: {optimizer}: {expected}"


def test_pytorch_judges_the_optimizers_where_params_are_read_for_training(tmp_path):
    raw = real_params()
    raw["optimizer"] = {"name": "sgd", "lr": 0.01, "nesterov": True}  # the table lets it through; SGD needs momentum
    path = write_params(tmp_path / "params.yaml", raw)
    with pytest.raises(UserError, match="optimizer: sgd: Nesterov momentum requires a momentum and zero dampening"):
        load_params(path)
    assert load_params(path, training=False).optimizer.hyperparameters == {"nesterov": True}


def test_reading_params_and_a_model_for_evaluation_imports_no_torch_dynamo():
    """torch._dynamo takes 2 s to import: the stages that do not train (evaluate, report, predict) never need it."""
    code = ("import sys; from mnist_dnn.lecture.config import load_params; "
            "params = load_params(sys.argv[1], training=False); "
            "[params.model_spec(v).shapes() for v in params.variants]; print(sorted(m for m in sys.modules "
            "if m.startswith('torch._dynamo')))")
    result = subprocess.run([sys.executable, "-c", code, str(PARAMS)], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


def test_the_class_still_checks_what_the_table_lets_through(tmp_path):
    raw = real_params()
    raw["optimizer"] = {"name": "adadelta", "lr": 0.01, "rho": 1.0, "eps": 0.0}  # both in range; torch agrees
    params = load_params(write_params(tmp_path / "params.yaml", raw))
    assert params.optimizer.hyperparameters == {"rho": 1.0, "eps": 0.0}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_table_names_every_hyperparameter_of_each_optimizer_and_no_other(name):
    accepted = set(inspect.signature(OPTIMIZERS[name]).parameters) - {"params", "lr", *IMPLEMENTATION_SWITCHES}
    assert set(HYPERPARAMETERS[name]) == accepted


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_default_value_passes_the_table(tmp_path, name):
    defaults = {key: p.default for key, p in inspect.signature(OPTIMIZERS[name]).parameters.items()
                if key in HYPERPARAMETERS[name]}
    raw = real_params()
    raw["optimizer"] = {"name": name, "lr": 0.01, **{k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in defaults.items()}}
    load_params(write_params(tmp_path / "params.yaml", raw))


def test_extra_optimizer_hyperparameters_reach_the_optimizer(tmp_path):
    raw = real_params()
    raw["optimizer"] = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
    assert load_params(write_params(tmp_path / "params.yaml", raw)).optimizer.hyperparameters == {"momentum": 0.9}


@pytest.mark.parametrize("key", ["optimizer.lr", "keep_prob", "variants.dnn.init", "data.val_size"])
def test_missing_key_is_one_line_user_error_naming_key(tmp_path, key):
    raw = real_params()
    set_key(raw, key, DELETE)
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


@pytest.mark.parametrize("variant, expected", [("nope", "not a variant: nope"), (DROPOUT_VARIANT, "uses dropout")])
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
    "seeds, expected",
    [([-1], "greater than or equal to 0"), ([1, 1], "distinct, got \\[1, 1\\]"), ([777], "777 is train.seed")],
)
def test_extra_seeds_must_be_new_distinct_seeds(tmp_path, seeds, expected):
    raw = real_params()
    raw["extra_seeds"] = seeds
    with pytest.raises(UserError, match=rf"params.yaml: extra_seeds(.0)?: .*{expected}"):
        load_params(write_params(tmp_path / "params.yaml", raw))


# ---- hostile params: bounded time and memory, bounded messages, names that stay names ------------------------

BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    + ["extra_seeds: *a9"]
) + "\n"


def test_billion_laughs_is_refused_in_one_short_line_within_the_caps(tmp_path, run_capped):
    (tmp_path / "params.yaml").write_text(BILLION_LAUGHS)  # 10**10 strings once its aliases are expanded
    assert len(BILLION_LAUGHS) < 3000
    code = ("from mnist_dnn.lecture.config import load_params; from mnist_dnn.stage.runtime import run_stage; "
            "run_stage(load_params)")
    result = run_capped(code)
    assert result.returncode == 2
    assert result.stderr == f"error: params.yaml: its aliases expand it to more than {MAX_YAML_NODES} YAML nodes\n"


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n"], ids=["sequence", "mapping"])
def test_a_recursive_alias_is_refused(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="aliases expand it to more than"):
        load_params(path)


def test_aliases_within_the_budget_still_work(tmp_path):
    text = PARAMS.read_text().replace("hidden: [512, 512, 512, 512]", "hidden: &deep [512, 512, 512, 512]", 1)
    text = text.replace("hidden: [512, 512, 512, 512]", "hidden: *deep")
    assert "&deep" in text and "*deep" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml") == load_params(PARAMS)


@pytest.mark.parametrize("key, value", [
    ("extra_seeds", list(range(5, 10_005))),
    ("keep_prob", "x" * 100_000),
    ("train.epochs", {"k" * 1000: ["v" * 1000] * 100}),
    ("optimizer.betas", [0.9, 10.0**300]),
], ids=["a long list", "a long string", "a large mapping", "a long number"])
def test_an_error_quotes_at_most_80_characters_of_the_input(tmp_path, key, value):
    raw = real_params()
    set_key(raw, key, value)
    if key == "extra_seeds":
        value.append(5)  # a duplicate, so that the list itself is refused
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < len(str(tmp_path / "params.yaml")) + 250


@pytest.mark.parametrize("key, name", [
    ("variants", "../../escape"),
    ("variants", "Softmax"),
    ("variants", "a" * 65),
    ("optimizer_study.optimizers", "../adam"),
    ("optimizer_study.optimizers", "ad am"),
])
def test_names_that_are_not_plain_names_are_refused(tmp_path, key, name):
    raw = real_params()
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last][name] = next(iter(node[last].values()))
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value).endswith(
        f"params.yaml: {key}: {quote(name)} is not a name: up to 64 lowercase letters, digits and _, a letter first"
    )


def test_the_optimizer_study_variant_must_be_a_name(tmp_path):
    raw = real_params()
    raw["optimizer_study"]["variant"] = "../../x"
    with pytest.raises(UserError, match=r"optimizer_study.variant: '../../x' is not a name"):
        load_params(write_params(tmp_path / "params.yaml", raw))


@pytest.mark.parametrize("key", ["train.seed", "data.split_seed"])
def test_a_seed_torch_cannot_take_is_refused(tmp_path, key):
    raw = real_params()
    set_key(raw, key, 2**64)
    with pytest.raises(UserError, match=rf"params.yaml: {key}: Input should be less than 18446744073709551616"):
        load_params(write_params(tmp_path / "params.yaml", raw))
    set_key(raw, key, 2**64 - 1)  # the largest seed is fine, and torch takes it
    section, name = key.split(".")
    params = load_params(write_params(tmp_path / "params.yaml", raw))
    torch.Generator().manual_seed(getattr(getattr(params, section), name))


def test_an_extra_seed_torch_cannot_take_is_refused(tmp_path):
    raw = real_params()
    raw["extra_seeds"] = [1, 2**64]
    with pytest.raises(UserError, match=r"params.yaml: extra_seeds.1: Input should be less than 18446744073709551616"):
        load_params(write_params(tmp_path / "params.yaml", raw))


@pytest.mark.parametrize("switch", ["foreach", "fused", "capturable", "differentiable"])
def test_optimizer_implementation_switches_are_refused(tmp_path, switch):
    raw = real_params()
    raw["optimizer"][switch] = True
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value).endswith(
        f"params.yaml: optimizer: {switch}: chooses how PyTorch runs the step, not what it computes; the engine sets it"
    )


@pytest.mark.slow
@pytest.mark.parametrize("hidden, expected", [
    ([100_000_000], "variants.dnn.hidden.0: Input should be less than or equal to 65536"),
    # (784 + 1) * 65536 + (65536 + 1) * 1024 + (1024 + 1) * 10 weights and biases
    ([65_536, 1024], "variants.dnn.hidden: 118,565,898 parameters, over the 50,000,000 allowed"),
    ([8] * 65, "variants.dnn.hidden: List should have at most 64 items"),
])
def test_a_model_too_large_to_build_is_refused_at_validation(tmp_path, run_capped, hidden, expected):
    raw = real_params()
    raw["variants"]["dnn"]["hidden"] = hidden
    write_params(tmp_path / "params.yaml", raw)
    code = ("from mnist_dnn.lecture.config import load_params; from mnist_dnn.stage.runtime import run_stage; "
            "run_stage(load_params)")
    result = run_capped(code)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: params.yaml: {expected}") and result.stderr.count("\n") == 1



@pytest.mark.parametrize("key, value, expected", [
    ("optimizer.lr", float("inf"), "optimizer.lr: Input should be a finite number (got inf)"),
    ("train.tf32", "no", "train.tf32: Input should be a valid boolean (got 'no')"),
    ("lecture_accuracy.dnn", 97.42, "lecture_accuracy.dnn: Input should be less than or equal to 1 (got 97.42)"),
    ("lecture_accuracy.dnn", float("nan"), "lecture_accuracy.dnn: Input should be a finite number (got nan)"),
    ("optimizer_study.target_accuracy", float("nan"), "optimizer_study.target_accuracy: Input should be a finite"),
    ("variants.dnn.dropout", "yes", "variants.dnn.dropout: Input should be a valid boolean (got 'yes')"),
    ("variants.dnn.hidden", [512.0], "variants.dnn.hidden.0: Input should be a valid integer (got 512.0)"),
    ("data.val_size", True, "data.val_size: Input should be a valid integer (got True)"),
    ("data.limit", 1, "data.limit: Input should be greater than or equal to 2 (got 1)"),
])
def test_a_value_at_any_depth_is_checked(tmp_path, key, value, expected):
    raw = real_params()
    set_key(raw, key, value)
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value).startswith(f"{tmp_path / 'params.yaml'}: {expected}")


@pytest.mark.parametrize("limit", [1000, 999])
def test_a_limit_that_leaves_no_training_image_is_refused(tmp_path, limit):
    raw = real_params()
    set_key(raw, "data.val_size", 1000)
    set_key(raw, "data.limit", limit)
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value) == (f"{tmp_path / 'params.yaml'}: data: val_size: 1000 leaves no training image of the "
                               f"first {limit} (limit)")


@pytest.mark.parametrize("keep_prob", [1e-17, 5e-324])
def test_a_keep_prob_whose_dropout_rounds_to_1_is_refused_in_the_range_checks_words(tmp_path, keep_prob):
    raw = real_params()
    raw["keep_prob"] = keep_prob
    with pytest.raises(UserError) as info:
        load_params(write_params(tmp_path / "params.yaml", raw))
    assert str(info.value) == (f"{tmp_path / 'params.yaml'}: keep_prob: Input should be greater than 0 "
                               f"(got {keep_prob!r}, and 1 - keep_prob rounds to 1)")


def test_the_smallest_keep_prob_whose_dropout_is_below_1_is_accepted(tmp_path):
    raw = real_params()
    raw["keep_prob"] = 2.0**-53
    assert load_params(write_params(tmp_path / "params.yaml", raw)).model_spec(DROPOUT_VARIANT).dropout_p < 1


@pytest.mark.parametrize("content", [b"train:\n  epochs: \xff\n", "\ufefftrain: [".encode("utf-16")],
                         ids=["latin-1 byte", "utf-16"])
def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path, content):
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"^{path}: cannot read: 'utf-8' codec can't decode byte 0x\w\w in position"):
        load_params(path)


def test_a_params_file_that_is_a_fifo_or_a_device_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)  # reading it would block for ever
    with pytest.raises(UserError, match=rf"^{fifo}: not a regular file$"):
        load_params(fifo)
    device = tmp_path / "zero.yaml"
    device.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(UserError, match=rf"^{device}: not a regular file$"):
        load_params(device)


@pytest.mark.slow
@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000))],
                         ids=["flow", "block"])
def test_yaml_nested_too_deeply_is_one_line(tmp_path, run_capped, text):
    (tmp_path / "params.yaml").write_text(text)
    code = ("from mnist_dnn.lecture.config import load_params; from mnist_dnn.stage.runtime import run_stage; "
            "run_stage(load_params)")
    result = run_capped(code)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: params.yaml: ") and result.stderr.count("\n") == 1
