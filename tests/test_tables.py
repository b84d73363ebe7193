import json
import math

import pandas as pd
import pytest
from ruamel.yaml import YAML

from helpers import REPO, edit_yaml, run_stage
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.config import Params, load_params
from mnist_dnn.results import outputs, tables
from mnist_dnn.results.markdown import optimizer_markdown, summary_markdown, sweep_markdown
from mnist_dnn.results.tables import optimizer_table, summary_table, sweep_points, sweep_table

PARAMS_PATH = REPO / "params.yaml"
STORED = list(outputs.SUMMARY_KINDS)  # metrics/summary.json's columns, in order
PORTABLE = {"torch": "2.14.1", "device": "cpu", "mode": "portable", "aten_cpu_capability": "AVX2", "mkl": "2024.2",
            "mkl_cbwr": "AVX2,STRICT", "mkl_branch": "AUTO,STRICT", "onednn": "v3.12.0", "cpu_vendor": "AuthenticAMD"}
NUMERICS = {name: PORTABLE for name in ("softmax", "nn_normal", "nn_xavier", "dnn", "dnn_dropout")}

LECTURE = {"softmax": 0.9035, "nn_normal": 0.9455, "nn_xavier": 0.9783, "dnn": 0.9742, "dnn_dropout": 0.9804}
ACCURACY = {"softmax": 0.9135, "nn_normal": 0.9455, "nn_xavier": 0.9795, "dnn": 0.9682, "dnn_dropout": 0.9811}
ONE_SEED = {name: [acc] for name, acc in ACCURACY.items()}


def make_params(keep_prob=0.7, lecture=LECTURE):
    """The real params.yaml with this test's keep_prob and lecture accuracies, and only the variants it has data for."""
    raw = YAML(typ="safe", pure=True).load(PARAMS_PATH.read_text())
    raw["variants"] = {name: raw["variants"][name] for name in ACCURACY}
    raw["keep_prob"] = keep_prob
    raw["lecture_accuracy"] = dict(lecture)
    return Params.model_validate(raw)


PARAMS = make_params()


def without_lecture_accuracy(name):
    return make_params(lecture={k: v for k, v in LECTURE.items() if k != name})


def markdown_rows(markdown):
    """Markdown table rows as dicts, keyed by the header cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, rows = cells[0], cells[2:]
    return {row[0]: dict(zip(header, row)) for row in rows}


def copy_params(root):
    """The real params.yaml into ``root``, comments kept, with only the variants this test has data for."""
    yaml = YAML()
    tree = yaml.load(PARAMS_PATH)
    for name in [name for name in tree["variants"] if name not in ACCURACY]:
        del tree["variants"][name]
    yaml.dump(tree, root / "params.yaml")


def test_real_params_start_with_the_lecture_variants_this_test_uses():
    assert list(load_params(PARAMS_PATH).variants)[:len(ACCURACY)] == list(ACCURACY)


def test_summary_table_rows_and_columns():
    table = summary_table(PARAMS, dict(reversed(ONE_SEED.items())))  # rows follow params, not this dict
    assert list(table.columns) == [key for key in STORED if key in table]
    with_seeds_or_costs = {*tables.SEED_STATISTICS, "within_noise", "cost_distance", "epochs_inside"}
    assert set(STORED) - set(table.columns) == with_seeds_or_costs
    assert list(table["variant"]) == list(PARAMS.variants)
    assert list(table["reproduced_accuracy"]) == [ACCURACY[n] for n in PARAMS.variants]
    assert list(table["lecture_accuracy"]) == [LECTURE[n] for n in PARAMS.variants]
    assert list(table["init"]) == [v.init for v in PARAMS.variants.values()]


def test_summary_table_architecture():
    table = summary_table(PARAMS, ONE_SEED).set_index("variant")
    assert table.loc["softmax", "architecture"] == "784→10"
    assert table.loc["nn_xavier", "architecture"] == "784→256→256→10"
    assert table.loc["dnn", "architecture"] == "784→512→512→512→512→10"


def test_summary_table_dropout():
    table = summary_table(PARAMS, ONE_SEED).set_index("variant")
    assert table.loc["dnn_dropout", "dropout"] == pytest.approx(0.3)
    assert (table.drop(index="dnn_dropout")["dropout"] == 0).all()


def test_summary_table_difference_in_percentage_points():
    table = summary_table(PARAMS, ONE_SEED)
    for _, row in table.iterrows():
        expected = 100 * (ACCURACY[row["variant"]] - LECTURE[row["variant"]])
        assert row["difference_pp"] == pytest.approx(expected, abs=0.005)
        assert row["difference_pp"] == round(row["difference_pp"], 2)
    assert table.set_index("variant").loc["softmax", "difference_pp"] == pytest.approx(1.0)


def test_markdown_shows_percentages_and_signed_differences():
    markdown = summary_markdown(summary_table(PARAMS, ONE_SEED), NUMERICS)
    rows = markdown_rows(markdown)
    assert list(rows) == list(PARAMS.variants)
    assert rows["nn_xavier"]["lecture"] == "97.83%"
    assert rows["nn_xavier"]["reproduced"] == "97.95%"
    assert rows["nn_xavier"]["difference (pp)"] == "+0.12"
    assert rows["dnn"]["difference (pp)"] == "-0.60"
    assert rows["softmax"]["difference (pp)"] == "+1.00"
    assert rows["dnn_dropout"]["dropout"] == "p = 0.3"
    assert rows["dnn"]["dropout"] == "–"


def test_variant_without_lecture_accuracy():
    table = summary_table(without_lecture_accuracy("dnn"), ONE_SEED)
    row = markdown_rows(summary_markdown(table, NUMERICS))["dnn"]
    assert row["lecture"] == "–"
    assert row["difference (pp)"] == "–"
    assert row["reproduced"] == "96.82%"
    records = {r["variant"]: r for r in json.loads(table.to_json(orient="records"))}
    assert records["dnn"]["lecture_accuracy"] is None
    assert records["dnn"]["difference_pp"] is None
    assert records["nn_xavier"]["lecture_accuracy"] == pytest.approx(0.9783)


def read_accuracies(params, eval_dir, seeds_dir):
    return outputs.read_accuracies(params.variants, params.extra_seeds, eval_dir, seeds_dir)


def write_accuracy(path, accuracy):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy, "loss": 0.1}))


def test_read_accuracies_puts_train_seed_first_then_extra_seeds(tmp_path):
    params = PARAMS.model_copy(update={"extra_seeds": [5, 3]})
    for name in ACCURACY:
        write_accuracy(tmp_path / f"eval/{name}.json", ACCURACY[name])
        for seed in (5, 3):
            write_accuracy(tmp_path / f"seeds/{name}-{seed}.json", ACCURACY[name] + seed / 1000)
    accuracies = read_accuracies(params, tmp_path / "eval", tmp_path / "seeds")
    assert accuracies == {name: [acc, acc + 0.005, acc + 0.003] for name, acc in ACCURACY.items()}


@pytest.mark.parametrize("content", [None, "{not json", '{"loss": 0.1}'], ids=["missing", "not-json", "no-accuracy"])
@pytest.mark.parametrize("where", ["eval/dnn.json", "seeds/dnn-5.json"])
def test_read_accuracies_bad_file_is_user_error_naming_the_stage(tmp_path, content, where):
    params = PARAMS.model_copy(update={"extra_seeds": [5]})
    for name in ACCURACY:
        write_accuracy(tmp_path / f"eval/{name}.json", 0.9)
        write_accuracy(tmp_path / f"seeds/{name}-5.json", 0.9)
    (tmp_path / where).unlink()
    if content is not None:
        (tmp_path / where).write_text(content)
    with pytest.raises(UserError) as info:
        read_accuracies(params, tmp_path / "eval", tmp_path / "seeds")
    stage = "evaluate@dnn" if where.startswith("eval") else "seed@dnn-5"
    assert where in str(info.value) and f"dvc repro {stage}" in str(info.value)
    assert "\n" not in str(info.value)


def test_several_seeds_add_statistics_and_the_seed_noise_of_each_step():
    accuracies = {name: [acc, acc + 0.002, acc - 0.002] for name, acc in ACCURACY.items()}
    accuracies["dnn_dropout"] = [0.99, 0.99, 0.99]  # far above dnn: a step beyond any noise
    table = summary_table(PARAMS, accuracies).set_index("variant")
    assert table.loc["nn_xavier", "seeds"] == 3
    assert table.loc["nn_xavier", "mean"] == pytest.approx(ACCURACY["nn_xavier"])
    assert table.loc["nn_xavier", "std"] == pytest.approx(0.002)
    assert (table.loc["nn_xavier", "min"], table.loc["nn_xavier", "max"]) == pytest.approx((0.9775, 0.9815))
    markdown = summary_markdown(table.reset_index(), NUMERICS)
    assert markdown_rows(markdown)["nn_xavier"]["mean ± std"] == "97.95 ± 0.20%"
    assert "## Seed noise (3 seeds per variant)" in markdown
    steps = markdown_rows(markdown.split("## Seed noise")[1])
    noise = 2 * (2 * 0.002**2 / 3) ** 0.5 * 100  # two standard errors of a difference of two 3-seed means
    assert steps["nn_xavier → dnn"]["seed noise, 2 SE (pp)"] == f"{noise:.2f}"
    step = 100 * (ACCURACY["dnn"] - ACCURACY["nn_xavier"])
    assert steps["nn_xavier → dnn"]["reproduced, mean (pp)"] == f"{step:+.2f}"
    assert steps["nn_xavier → dnn"]["beyond the noise"] == "yes"  # -1.13 pp against 0.33 pp
    assert steps["dnn → dnn_dropout"]["lecture (pp)"] == f"{100 * (LECTURE['dnn_dropout'] - LECTURE['dnn']):+.2f}"


def test_one_seed_shows_no_seed_statistics():
    markdown = summary_markdown(summary_table(PARAMS, ONE_SEED), NUMERICS)
    assert "mean ± std" not in markdown and "Seed noise" not in markdown


def test_optimizer_table_counts_epochs_to_the_target_and_keeps_study_order():
    study = PARAMS.optimizer_study
    names = list(study.optimizers)
    results = {n: {"test_accuracy": 0.9 + i / 100, "train_loss": 0.1 * i} for i, n in enumerate(names)}
    curves = {n: [0.95, 0.96, 0.97, 0.98] for n in names}
    curves[names[0]] = [0.95, 0.969, 0.9701, 0.99]  # reaches 0.97 in epoch 3
    curves[names[1]] = [0.90, 0.91, 0.92, 0.93]  # never
    table = optimizer_table(study, results, curves)
    assert list(table.columns) == ["optimizer", "hyperparameters", "test_accuracy", "final_train_loss",
                                   "epochs_to_target"]  # no wall-clock value
    assert table["optimizer"].tolist() == names
    assert table["epochs_to_target"].tolist()[:3] == [3, pd.NA, 3]
    assert json.loads(table.to_json(orient="records"))[1]["epochs_to_target"] is None
    assert table["test_accuracy"].tolist() == [results[n]["test_accuracy"] for n in names]
    rows = markdown_rows(optimizer_markdown(table, study))
    assert rows[names[1]]["epochs to 97% val"] == "never"
    assert rows["momentum"]["hyperparameters"] == "name=sgd, lr=0.01, momentum=0.9"


def test_test_metrics_are_each_variants_accuracy_then_loss_in_params_order(tmp_path):
    for i, name in enumerate(reversed(list(ACCURACY))):
        (tmp_path / f"{name}.json").write_text(json.dumps({"loss": i / 10, "accuracy": ACCURACY[name], "x": 1}))
    headline = outputs.read_test_metrics(list(ACCURACY), tmp_path)
    assert list(headline) == ["accuracy", "loss"]
    assert headline["accuracy"] == ACCURACY and list(headline["accuracy"]) == list(ACCURACY)
    assert headline["loss"]["softmax"] == 0.4 and headline["loss"]["dnn_dropout"] == 0.0


@pytest.mark.parametrize("content, expected", [
    ({"accuracy": 0.9}, "loss: Field required"),
    ({"accuracy": "0.9", "loss": 0.1}, "accuracy: Input should be a valid number (got '0.9')"),
    ({"accuracy": 1.5, "loss": 0.1}, "accuracy: Input should be less than or equal to 1 (got 1.5)"),
    ({"accuracy": 0.9, "loss": float("nan")}, "loss: Input should be a finite number (got nan)"),
    ([0.9, 0.1], "(top level): Input should be a valid dictionary or instance of TestMetrics (got [0.9, 0.1])"),
])
def test_test_metrics_of_the_wrong_shape_are_one_line_naming_the_field(tmp_path, content, expected):
    (tmp_path / "softmax.json").write_text(json.dumps(content))
    with pytest.raises(UserError) as info:
        outputs.read_test_metrics(["softmax"], tmp_path)
    assert str(info.value) == f"{tmp_path / 'softmax.json'}: {expected}; run `dvc repro evaluate@softmax`"


SWEEP = [
    {"keep_prob": 0.5, "seeds": [777, 1, 2], "accuracies": [0.97, 0.98, 0.99]},
    {"keep_prob": 1.0, "seeds": [777, 1, 2], "accuracies": [0.981, 0.981, 0.981]},
]


def test_sweep_table_has_the_statistics_over_seeds_of_each_keep_prob():
    table = sweep_table(SWEEP)
    assert list(table["keep_prob"]) == [0.5, 1.0] and list(table["dropout"]) == [0.5, 0.0]
    assert list(table["seeds"]) == [3, 3]
    assert table["mean"].tolist() == pytest.approx([0.98, 0.981])
    assert table["std"].tolist() == pytest.approx([0.01, 0.0])
    assert table["min"].tolist() == [0.97, 0.981] and table["max"].tolist() == [0.99, 0.981]
    assert sweep_points(SWEEP)["accuracy"].tolist() == [0.97, 0.98, 0.99, 0.981, 0.981, 0.981]


def test_sweep_markdown():
    markdown = sweep_markdown(sweep_table(SWEEP), "dnn_dropout", [777, 1, 2])
    assert "seeds 777, 1, 2" in markdown
    rows = markdown_rows(markdown)
    assert rows["0.5"] == {"keep_prob": "0.5", "dropout": "p = 0.5", "seeds": "3", "mean ± std": "98.00 ± 1.00%",
                           "min–max": "97.00%–99.00%", "each seed": "97.00%, 98.00%, 99.00%"}
    assert rows["1"]["dropout"] == "–" and rows["1"]["mean ± std"] == "98.10 ± 0.00%"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{}", "variant: Field required"),
        ('{"variant": "v", "runs": [{"keep_prob": 0.5, "seeds": [1]}]}', "runs.0.accuracies: Field required"),
        ('{"variant": "v", "runs": [{"keep_prob": 0, "seeds": [1], "accuracies": [0.9]}]}',
         "runs.0.keep_prob: Input should be greater than 0"),
        ("[", "not JSON"),
    ],
)
def test_a_bad_sweep_file_is_a_user_error_saying_make_sweep(tmp_path, content, message):
    path = tmp_path / "keep_prob.json"
    path.write_text(content)
    with pytest.raises(UserError, match=f"{message}.*run `make sweep`"):
        outputs.read_sweep(path)


def write_eval_metrics(root, trained_with=PARAMS.trained_with):
    """metrics/eval/<variant>.json and the dvclive cost curve of each variant in ``root``, each recording the model's
    ``trained_with(variant)``."""
    (root / "metrics/eval").mkdir(parents=True)
    for i, (name, accuracy) in enumerate(ACCURACY.items()):
        per_class = {str(c): accuracy for c in range(10)}
        (root / f"metrics/eval/{name}.json").write_text(json.dumps(
            {"accuracy": accuracy, "loss": i / 10, "per_class_accuracy": per_class, "numerics": PORTABLE,
             "trained_with": trained_with(name)}
        ))
        costs = root / f"metrics/train/{name}/plots/metrics/train"
        costs.mkdir(parents=True)
        (costs / "loss_after_step.tsv").write_text("step\tloss_after_step\n1\t0.5\n2\t0.25\n")


def test_summarize_stage_writes_the_headline_metrics(tmp_path, monkeypatch, capsys):
    copy_params(tmp_path)
    write_eval_metrics(tmp_path)
    assert run_stage(monkeypatch, tmp_path, "summarize") == 0
    assert capsys.readouterr().err == ""
    headline = json.loads((tmp_path / "metrics/test.json").read_text())
    assert headline == {"accuracy": ACCURACY, "loss": {name: i / 10 for i, name in enumerate(ACCURACY)}}
    assert list(headline["accuracy"]) == list(ACCURACY)
    assert json.loads((tmp_path / "metrics/numerics.json").read_text()) == NUMERICS
    lecture = PARAMS.lecture_cost["dnn"][:2]
    expected = (abs(math.log(0.5 / lecture[0])) + abs(math.log(0.25 / lecture[1]))) / 2
    summary = {row["variant"]: row for row in json.loads((tmp_path / "metrics/summary.json").read_text())}
    assert summary["dnn"]["cost_distance"] == pytest.approx(expected)


@pytest.mark.parametrize("key, value", [("optimizer.lr", 0.003), ("train.epochs", 3), ("keep_prob", 0.5),
                                        ("optimizer.momentum", 0.9)])
def test_summarize_refuses_metrics_of_a_model_trained_with_other_params(tmp_path, monkeypatch, capsys, key, value):
    copy_params(tmp_path)
    edit_yaml(tmp_path / "params.yaml", {key: value, "optimizer.name": "sgd"} if "momentum" in key else {key: value})
    write_eval_metrics(tmp_path)  # from models trained with the committed params
    assert run_stage(monkeypatch, tmp_path, "summarize") == 2
    err = capsys.readouterr().err
    variant = "dnn_dropout" if key == "keep_prob" else next(iter(ACCURACY))
    assert err.startswith(f"error: metrics/eval/{variant}.json: trained with ")
    assert err.endswith(f"; run `dvc repro --force evaluate@{variant}`\n") and err.count("\n") == 1
    assert not (tmp_path / "metrics/summary.json").exists()


def test_the_reports_check_names_the_seed_a_seed_run_was_trained_with(tmp_path):
    write_eval_metrics(tmp_path)
    params = PARAMS.model_copy(update={"extra_seeds": [1]})
    (tmp_path / "metrics/seeds").mkdir()
    for name in ACCURACY:
        record = {"accuracy": 0.9, "loss": 0.1, "loss_after_step": [0.5], "trained_with": PARAMS.trained_with(name, 2)}
        (tmp_path / f"metrics/seeds/{name}-1.json").write_text(json.dumps(record))
    outputs.check_trained_with(params, tmp_path / "metrics/eval")  # the report's check: the main table only
    with pytest.raises(UserError, match=r"softmax-1.json: trained with seed 2, but params.yaml has 1; run "
                                        r"`dvc repro --force seed@softmax-1`$"):
        outputs.check_trained_with(params, tmp_path / "metrics/eval", tmp_path / "metrics/seeds")


def test_curve_distance_is_the_mean_absolute_log_ratio():
    assert tables.curve_distance([1.0, 2.0], [1.0, 1.0]) == pytest.approx(math.log(2) / 2)
    assert tables.curve_distance([0.5, 2.0, 7.0], [1.0, 1.0]) == pytest.approx(math.log(2))  # common epochs only


def test_epochs_inside_counts_where_the_lecture_lies_within_the_seeds():
    seeds = [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]]
    assert tables.epochs_inside(seeds, [1.2, 3.0, 3.5]) == "2/3"


def test_the_summary_compares_cost_curves_with_the_lecture():
    lecture = PARAMS.lecture_cost
    one_seed = {name: [[2 * c for c in lecture[name]]] for name in LECTURE}
    table = summary_table(PARAMS, ONE_SEED, one_seed).set_index("variant")
    assert table["cost_distance"].tolist() == pytest.approx([math.log(2)] * 5)
    assert "epochs_inside" not in table
    two_seeds = {name: [[2 * c for c in lecture[name]], [c / 2 for c in lecture[name]]] for name in LECTURE}
    accuracies = {name: [acc, acc + 0.001] for name, acc in ACCURACY.items()}
    table = summary_table(PARAMS, accuracies, two_seeds).set_index("variant")
    assert (table["epochs_inside"] == f"{len(lecture['dnn'])}/{len(lecture['dnn'])}").all()
    assert "cost vs lecture" in summary_markdown(summary_table(PARAMS, accuracies, two_seeds), NUMERICS)


def test_the_summary_reader_takes_every_column_summary_table_writes():
    accuracies = {name: [acc, acc + 0.001] for name, acc in ACCURACY.items()}
    costs = {name: [PARAMS.lecture_cost[name]] * 2 for name in LECTURE}
    table = summary_table(PARAMS, accuracies, costs)
    assert list(table.columns) == STORED
    outputs.parse_json(table.to_json(orient="records"), outputs.Summary, "summary.json", "dvc repro summarize")


def test_the_summary_says_where_it_was_computed():
    markdown = summary_markdown(summary_table(PARAMS, ONE_SEED), NUMERICS)
    assert "Computed with CPU, portable numerics: torch 2.14.1" in markdown
    assert "MKL 2024.2 (CBWR AVX2,STRICT, ran AUTO,STRICT)" in markdown
    assert "the same bits on any AuthenticAMD CPU with AVX2, any thread count" in markdown


def test_a_summary_without_a_column_the_code_now_writes_names_it_and_the_command_that_writes_it(tmp_path):
    rows = json.loads((REPO / "metrics/seed_noise.json").read_text())
    for row in rows:
        del row["bias_init"]  # as a seed-noise table from before a new column would lack it
    path = tmp_path / "seed_noise.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(UserError) as refused:
        outputs.read_summary(path, "make seed-noise")
    assert str(refused.value) == f"{path}: 0.bias_init: Field required; run `make seed-noise`"


def test_each_column_that_outputs_checks_reads_as_a_column_of_the_table_in_its_order():
    shown = [column.key for column in tables.SUMMARY]
    assert [key for key in shown if key in outputs.SUMMARY_KINDS] == list(outputs.SUMMARY_KINDS)
