"""src/mnist_dnn/tools/agreement.py: a set of results that agree passes; a seed-noise table, a sweep or numerics of
another run, a picture of another report, or a figure in the docs that no result table holds, is named in one line
each; and the committed results agree."""

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image, PngImagePlugin

from helpers import REPO, pipeline_env
from mnist_dnn import paths
from mnist_dnn.results import report_picture
from mnist_dnn.tools import agreement

OTHER_VENDOR = {"AuthenticAMD": "GenuineIntel", "GenuineIntel": "AuthenticAMD"}


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def picture_of(page, picture):
    """A tiny PNG whose metadata names ``page``, as report_picture.take writes it."""
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text(report_picture.SOURCE_KEY, report_picture.sha256(page))
    picture.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 4), "white").save(picture, pnginfo=metadata)


@pytest.fixture
def agreeing(tmp_path):
    """Results that agree, made here from this project's params and the shapes of its committed files: the seed-noise
    rows and the sweep's run of train.seed and keep_prob are the main table's, all of one machine's numerics."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    table = json.loads((REPO / paths.SUMMARY).read_text())
    numerics = json.loads((REPO / paths.NUMERICS).read_text())
    one = next(iter(numerics.values()))
    noise = [dict(row, seeds=5, mean=row["reproduced_accuracy"], std=0.001, min=row["reproduced_accuracy"] - 0.002,
                  max=row["reproduced_accuracy"] + 0.002) for row in table]
    sweep = {"variant": "dnn_dropout", "runs": [
        {"keep_prob": 0.5, "seeds": [777, 1], "accuracies": [0.97, 0.971]},
        {"keep_prob": 0.7, "seeds": [1, 777], "accuracies": [0.972, table[-1]["reproduced_accuracy"]]},
    ]}
    write_json(tmp_path / paths.SUMMARY, table)
    write_json(tmp_path / paths.SEED_NOISE, noise)
    write_json(tmp_path / paths.NUMERICS, {row["variant"]: one for row in table})
    write_json(tmp_path / agreement.SEED_NOISE_NUMERICS, {row["variant"]: one for row in table})
    write_json(tmp_path / paths.SWEEP, sweep)
    write_json(tmp_path / agreement.sweep_numerics(), one)
    (tmp_path / "metrics/report.html").write_text("<p>the report</p>")
    picture_of(tmp_path / paths.REPORT, tmp_path / report_picture.PICTURE)
    (tmp_path / "metrics/summary.md").write_text("| variant | mean ± std |\n|---|---|\n| dnn | 97.91 ± 0.29% |\n")
    (tmp_path / "README.md").write_text("The deep network gives 97.91 ± 0.29%, the lecture 97.42%.\n")
    assert table[-1]["variant"] == "dnn_dropout" and "keep_prob: 0.7" in (tmp_path / "params.yaml").read_text()
    return tmp_path


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_results_of_one_run_agree(agreeing):
    assert agreement.disagreements(agreeing) == []


def test_a_seed_noise_table_of_another_run_is_named(agreeing):
    edit_json(agreeing / paths.SEED_NOISE, lambda rows: rows[3].update(reproduced_accuracy=0.5))
    assert agreement.disagreements(agreeing) == [
        "metrics/seed_noise.json: its train.seed run of dnn is not the main table's (other reproduced_accuracy than "
        "metrics/summary.json)"]


def test_a_sweep_of_another_run_is_named(agreeing):
    edit_json(agreeing / paths.SWEEP, lambda sweep: sweep["runs"][1]["accuracies"].reverse())
    [line] = agreement.disagreements(agreeing)
    assert line.startswith("metrics/sweeps/keep_prob.json: its run of keep_prob 0.7 and seed 777 (0.972) is not the "
                           "main table's dnn_dropout")


def test_numerics_of_another_vendor_are_named_with_their_files(agreeing):
    vendor = json.loads((agreeing / agreement.sweep_numerics()).read_text())["cpu_vendor"]
    other = OTHER_VENDOR[vendor]
    edit_json(agreeing / agreement.SEED_NOISE_NUMERICS, lambda by_variant: by_variant["dnn"].update(cpu_vendor=other))
    [line] = agreement.disagreements(agreeing)
    assert line == (f"other numerics in one set of results (metrics/numerics.json: {vendor}; "
                    f"metrics/seed_noise_numerics.json: {' and '.join(sorted([vendor, other]))}; "
                    f"metrics/sweeps/keep_prob_numerics.json: {vendor})")


def test_a_picture_of_another_report_is_named(agreeing):
    (agreeing / paths.REPORT).write_text("<p>the report, made again</p>")
    assert agreement.disagreements(agreeing) == ["docs/report.png: not the first screen of metrics/report.html as "
                                               "committed"]


def test_a_figure_that_no_result_table_holds_is_named(agreeing):
    (agreeing / "docs/results.md").write_text("```\n12.34%\n```\nSeed 777 gives 97.41% (±0.29; noise 0.34 pp).\n")
    assert agreement.disagreements(agreeing) == [
        "docs/results.md: quotes 97.41%, which no committed result table holds (edit its prose)",
        "docs/results.md: quotes 0.34 pp, which no committed result table holds (edit its prose)"]


def test_make_results_last_check_fails_in_one_line_naming_what_to_rerun(agreeing):
    edit_json(agreeing / paths.SEED_NOISE, lambda rows: rows[0].update(cost_distance=0.5))
    result = subprocess.run([sys.executable, "-m", "mnist_dnn.tools.agreement"], cwd=agreeing, env=pipeline_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "softmax" in result.stderr and "run `make results`" in result.stderr and "Traceback" not in result.stderr


def test_the_committed_results_agree():
    assert agreement.disagreements(REPO) == [], "`make results` remakes them all at once; a page's prose is edited"
