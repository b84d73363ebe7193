"""End to end: the real `dvc repro` on real MNIST, in a temporary git + DVC copy of this repository.

MNIST comes from $MNIST_MIRROR when it is set (CI sets it to ../shared/mnist), else from the public mirrors.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import DROPOUT_VARIANT, SMALL_RUN, SMALL_STUDY, VARIANTS, commit, edit_yaml, pipeline_env, ran_stages, run
from mnist_dnn import paths

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]  # one worker, in order


@pytest.fixture(scope="module")
def repo(trained_project, tmp_path_factory):
    """This module's copy of the trained project (the small run, committed, after `dvc repro`), and its output."""
    trained, output = trained_project
    root = tmp_path_factory.mktemp("pipeline") / "mnist-dnn"
    shutil.copytree(trained, root, symlinks=True)
    return root, output


def test_repro_runs_every_stage_and_writes_all_metrics(repo):
    root, output = repo
    expected = {"download", "prepare", "summarize", "report", "compare_optimizers"}
    expected |= {f"{s}@{v}" for s in ("train", "evaluate") for v in VARIANTS}
    expected |= {f"optimizer_study@{name}" for name in SMALL_STUDY}
    assert ran_stages(output) == expected
    for variant in VARIANTS:
        metrics = json.loads((root / f"metrics/eval/{variant}.json").read_text())
        assert 0.5 < metrics["accuracy"] <= 1  # the small run is far above chance (0.1)
        assert set(metrics["per_class_accuracy"]) == {str(c) for c in range(10)}
        assert (root / paths.model_file(variant)).stat().st_size > 0
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert [row["variant"] for row in summary] == VARIANTS
    assert all(variant in (root / "metrics/summary.md").read_text() for variant in VARIANTS)
    report = (root / "metrics/report.html").read_text()
    assert all(f'id="confusion-{variant}"' in report for variant in VARIANTS)
    optimizers = json.loads((root / "metrics/optimizers.json").read_text())
    assert [row["optimizer"] for row in optimizers] == SMALL_STUDY
    assert all(0.5 < row["test_accuracy"] <= 1 for row in optimizers)
    curves = (root / "metrics/optimizers_val_accuracy.csv").read_text().splitlines()
    epochs = SMALL_RUN["train.epochs"]
    assert curves[0] == "epoch,val_accuracy,optimizer" and len(curves) == 1 + len(SMALL_STUDY) * epochs
    assert "up to date" in run(["dvc", "status"], root)
    plots = run(["dvc", "plots", "show", "--json"], root)  # the README's command, as data
    for plot in ["metrics/train/dnn/plots", "metrics/confusion/dnn_dropout.csv", "metrics/optimizers_val_accuracy.csv"]:
        assert plot in plots, plot
    assert json.loads((root / "metrics/test.json").read_text())["accuracy"] == {
        v: json.loads((root / f"metrics/eval/{v}.json").read_text())["accuracy"] for v in VARIANTS
    }


def test_retraining_with_the_same_seed_gives_identical_weights_and_metrics(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_text()
    metrics = (root / "metrics/eval/dnn_dropout.json").read_text()
    for stage in ("train@dnn_dropout", "evaluate@dnn_dropout"):
        assert ran_stages(run(["dvc", "repro", "--force", "--single-item", stage], root)) == {stage}
    assert (root / "dvc.lock").read_text() == lock  # the retrained model hashes the same
    assert (root / "metrics/eval/dnn_dropout.json").read_text() == metrics
    assert "up to date" in run(["dvc", "status"], root)


def files_in(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_training_stage_killed_mid_run_leaves_no_partial_output(repo):
    root, _ = repo
    model, log = root / paths.model_file("dnn"), root / "metrics/train/dnn"
    trained, evaluated = model.read_bytes(), (root / "metrics/eval/dnn.json").read_text()
    logged = files_in(log)
    staging = ".dnn.safetensors.*.tmp"  # where the stage writes; a SIGKILL leaves its folder (files.atomic_outputs)
    left = set(model.parent.glob(staging))  # by an earlier kill: waiting on those would not wait at all
    stage = subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", "train@dnn"],
        cwd=root, env=pipeline_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not set(model.parent.glob(staging)) - left:  # training, into a staging folder of its own
            assert stage.poll() is None and time.monotonic() < deadline, stage.communicate()[0]
            time.sleep(0.01)
    finally:
        os.killpg(stage.pid, signal.SIGKILL)
        stage.communicate()
    assert not model.exists()  # DVC moved the old model away before the run; no partial new one appeared
    # No partial new file: what is left of the log is the old one's (DVC removed its DVC-tracked metrics.json)
    assert files_in(log).items() <= logged.items()
    run(["dvc", "repro"], root)
    assert model.read_bytes() == trained
    assert (root / "metrics/eval/dnn.json").read_text() == evaluated
    assert ".tmp" not in run(["git", "status", "--porcelain", "--untracked-files=all"], root)
    assert "up to date" in run(["dvc", "status"], root)


def test_push_then_pull_in_a_fresh_clone_leaves_nothing_to_rerun(repo):
    root, _ = repo
    commit(root, "trained")
    run(["dvc", "push"], root)  # to the default remote, ../mnist-dnn-storage: no set-up
    clone = root.parent / "clone"  # beside the repo, so ../mnist-dnn-storage is the same folder
    run(["git", "clone", "-q", str(root), str(clone)], root.parent)
    run(["dvc", "pull"], clone)
    assert ran_stages(run(["dvc", "repro"], clone)) == set()
    for variant in VARIANTS:
        for path in (paths.model_file(variant), paths.eval_file(variant)):
            assert (clone / path).read_bytes() == (root / path).read_bytes(), path


def markdown_table(text):
    """The header and the rows of the Markdown table in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, *rows = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return header, [row for row in rows if not set("".join(row)) <= set("-: ")]


def test_keep_prob_reruns_only_the_dropout_variant_and_its_results_fit_on_a_screen(repo):
    root, _ = repo
    commit(root, "before keep_prob")
    output = run(["dvc", "exp", "run", "-S", "keep_prob=0.5"], root)
    assert ran_stages(output) == {f"train@{DROPOUT_VARIANT}", f"evaluate@{DROPOUT_VARIANT}", "summarize", "report"}
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], root))
    assert {path: set(metrics) for path, metrics in diff.items()} == {
        "metrics/test.json": {f"accuracy.{DROPOUT_VARIANT}", f"loss.{DROPOUT_VARIANT}"}
    }
    # What a person sees. Every metric: the five test accuracies first, then the losses.
    _, rows = markdown_table(run(["dvc", "metrics", "diff", "--all", "--md"], root))
    assert len(rows) <= 12
    assert [row[1] for row in rows[: len(VARIANTS)]] == [f"accuracy.{v}" for v in sorted(VARIANTS)], rows
    # `dvc exp show --only-changed`: the changed param and metrics, and the five accuracies when kept.
    changed, _ = markdown_table(run(["dvc", "exp", "show", "--only-changed", "--md"], root))
    assert len(changed) <= 20 and "keep_prob" in changed and f"accuracy.{DROPOUT_VARIANT}" in changed, changed
    kept, _ = markdown_table(run(["dvc", "exp", "show", "--only-changed", "--keep", "accuracy", "--md"], root))
    assert len(kept) <= 20 and {f"accuracy.{v}" for v in VARIANTS} <= set(kept), kept
    print(f"dvc metrics diff --all: {len(rows)} rows; dvc exp show --only-changed: {len(changed)} columns, "
          f"with --keep accuracy: {len(kept)}")


def test_one_optimizers_hyperparameters_rerun_only_its_stage(repo):
    root, _ = repo
    commit(root, "before ftrl l1")
    output = run(["dvc", "exp", "run", "-S", "+optimizer_study.optimizers.ftrl.l1=0.0001"], root)
    assert ran_stages(output) == {"optimizer_study@ftrl", "compare_optimizers", "report"}  # the report shows the study


def dvc_api_exp_show(root):
    """`dvc exp show` as records, from DVC's Python API run in the test repo."""
    code = "import json, dvc.api; print(json.dumps(dvc.api.exp_show(), default=str))"
    return json.loads(run([sys.executable, "-c", code], root))


def test_the_sweep_queues_two_experiments_that_run_only_the_dropout_variants_stages_and_leave_the_workspace(repo):
    root, _ = repo
    commit(root, "before the sweep")
    params = (root / "params.yaml").read_text()
    output = root / "metrics/sweeps/keep_prob"
    argv = ["--values", "0.4", "0.6", "--seeds", "1", "--jobs", "2", "--output", str(output)]
    # `dvc exp run --queue` each, then `dvc queue start`
    run([sys.executable, "-m", "mnist_dnn.tools.sweep", *argv], root)
    names = {"sweep-keep_prob-0.4": 0.4, "sweep-keep_prob-0.6": 0.6}
    for name in names:
        logs = run(["dvc", "queue", "logs", name], root)
        assert ran_stages(logs) == {"train@dnn_dropout", "evaluate@dnn_dropout", "seed@dnn_dropout-1"}, name
    shown = {row["Experiment"]: row["keep_prob"] for row in dvc_api_exp_show(root) if row.get("Experiment") in names}
    assert shown == names
    points = json.loads(output.with_suffix(".json").read_text())["runs"]
    assert [(point["keep_prob"], point["seeds"]) for point in points] == [(0.4, [777, 1]), (0.6, [777, 1])]
    assert all(0.5 < accuracy <= 1 for point in points for accuracy in point["accuracies"])
    table = output.with_suffix(".md").read_text()
    assert "| 0.4 " in table and "| 0.6 " in table
    assert (root / "params.yaml").read_text() == params
    recorded = json.loads(output.with_name("keep_prob_numerics.json").read_text())  # this machine's, as training's
    assert recorded == json.loads((root / "metrics/eval/dnn_dropout.json").read_text())["numerics"]
    changed = {line[3:] for line in run(["git", "status", "--porcelain", "--untracked-files=all"], root).splitlines()}
    # the numerics file changes only on a machine of other numerics than the committed sweep's
    assert changed - {"metrics/sweeps/keep_prob_numerics.json"} == {f"metrics/sweeps/keep_prob{s}"
                                                                   for s in (".json", ".md", ".svg")}


SIXTH = "dnn_wide"  # a variant the lecture lacks: no lecture numbers, no dropout


def add_sixth_variant(root):
    """The edits that add a variant (docs/layout.md): its params.yaml entry, its foreach line, its lines in the
    five-variant plots and its artifact."""
    edit_yaml(root / "params.yaml", {f"variants.{SIXTH}": {"hidden": [1024], "init": "xavier_uniform",
                                                           "bias_init": "pytorch"}})
    dvc_yaml = root / "dvc.yaml"
    dropout_line = f"      {DROPOUT_VARIANT}: {{reads: keep_prob}}\n"
    text = dvc_yaml.read_text().replace(dropout_line, f"{dropout_line}      {SIXTH}: {{reads: train}}\n")
    text = re.sub(rf"^( +\$\{{train_logs\}}/){DROPOUT_VARIANT}(/.*)$", rf"\g<0>\n\g<1>{SIXTH}\g<2>", text, flags=re.M)
    dvc_yaml.write_text(text + f"""  {SIXTH}:
    path: {paths.model_file(SIXTH)}
    type: model
    desc: MLP 784→1024→10 with ReLU, Xavier uniform init, Adam
    labels: [mnist, pytorch, safetensors, mlp]
""")


def test_a_sixth_variant_added_in_four_places_trains_and_joins_the_table_and_the_checks(trained_project,
                                                                                         tmp_path_factory):
    trained, _ = trained_project
    root = tmp_path_factory.mktemp("sixth") / "mnist-dnn"
    shutil.copytree(trained, root, symlinks=True)
    add_sixth_variant(root)
    output = run(["dvc", "repro"], root)
    assert ran_stages(output) == {f"train@{SIXTH}", f"evaluate@{SIXTH}", "summarize", "report"}
    summary = json.loads((root / "metrics/summary.json").read_text())
    assert [row["variant"] for row in summary] == [*VARIANTS, SIXTH]
    assert summary[-1]["lecture_accuracy"] is None and 0.5 < summary[-1]["reproduced_accuracy"] <= 1
    header, rows = markdown_table((root / "metrics/summary.md").read_text())
    last = dict(zip(header, rows[-1]))
    assert last["variant"] == SIXTH and last["lecture"] == "–"  # no lecture number
    assert f'id="confusion-{SIXTH}"' in (root / "metrics/report.html").read_text()
    # The tests that read the variants from params.yaml and dvc.yaml take the sixth one in, and pass, on the copy's code
    # in their subprocesses too. Those marked slow (hostile YAML, oversized models) name their own variants: not these.
    checks = ["tests/test_dvc_yaml.py", "tests/test_config.py", "tests/test_paths.py", "tests/test_tables.py"]
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-m", "not slow",
              *checks]
    run(pytest, root, PYTHONPATH=str(root / "src"))
