"""The HTML report from tiny made-up inputs: its content, the stage, and the page as headless Chromium shows it."""

import base64
import dataclasses
import html
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from dvclive import Live
from PIL import Image
from selenium.webdriver.common.by import By

from helpers import REPO, edit_yaml, run_stage
from mnist_dnn import paths
from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.results import autograd_graph, charts, report_picture
from mnist_dnn.results.html_report import (
    SECTIONS,
    ReportInputs,
    build_report,
    confusion_html,
    gallery_html,
    graphs_html,
    optimizers_html,
    seed_noise_html,
    summary_html,
    sweep_html,
)
from mnist_dnn.results.tables import sweep_points, sweep_table

N = 40  # test images
KNOWN = ["variant", "architecture", "init", "bias_init", "dropout", "lecture_accuracy", "reproduced_accuracy",
         "difference_pp"]
ROWS = [  # as metrics/summary.json, with one key more
    dict(zip(KNOWN, ["alpha", "784→10", "normal", "normal", 0.0, 0.30, 0.35, 5.0]), seed_std=0.00123),
    dict(zip(KNOWN, ["beta", "784→8→10", "xavier_uniform", "pytorch", 0.3, None, 0.925, None]), seed_std=0.0005),
]
ACTUAL = np.arange(N) % 10
PREDICTED = {
    "alpha": np.where(np.arange(N) < 14, ACTUAL, (ACTUAL + 1) % 10),  # 26 wrong: 14…39
    "beta": ACTUAL.copy(),
}
PREDICTED["beta"][[3, 13, 7]] = [5, 5, 1]  # 3 wrong: actual 3 → 5 twice, 7 → 1 once
SPECS = {"alpha": ModelSpec(variant="alpha", hidden=(), init="normal", bias_init="normal"),
         "beta": ModelSpec(variant="beta", hidden=(8,), init="xavier_uniform", dropout_p=0.3, bias_init="pytorch")}
SEEDED = [dict(ROWS[0], seeds=3, mean=0.35, std=0.01, min=0.34, max=0.36),
          dict(ROWS[1], seeds=3, mean=0.92, std=0.002, min=0.918, max=0.922)]
SWEEP = {"variant": "beta", "runs": [{"keep_prob": k, "seeds": [777, 1], "accuracies": [0.9 + k / 20, 0.91 + k / 20]}
                                     for k in (0.5, 0.75, 1.0)]}
STUDY = load_params(REPO / "params.yaml").optimizer_study
AFTER_STEP = {"alpha": [1.5, 0.8, 0.4], "beta": [1.0, 0.5, 0.2]}
LECTURE_COST = {"alpha": [1.4, 0.7, 0.45]}  # beta has no lecture curve
OPTIMIZERS = [  # as metrics/optimizers.json
    {"optimizer": "adam", "hyperparameters": "name=adam, lr=0.001", "test_accuracy": 0.97, "final_train_loss": 0.01,
     "epochs_to_target": 2},
    {"optimizer": "ftrl", "hyperparameters": "name=ftrl, lr=0.1", "test_accuracy": 0.95, "final_train_loss": 0.1,
     "epochs_to_target": None},
]
OPTIMIZER_CURVES = pd.DataFrame({"epoch": [1, 2, 1, 2], "val_accuracy": [0.9, 0.97, 0.8, 0.9],
                                 "optimizer": ["adam", "adam", "ftrl", "ftrl"]})


@pytest.fixture(scope="module")
def inputs():
    """The report's inputs for two variants: curves of 3 epochs, confusion pairs, random 28×28 images, seed noise, the
    sweep, autograd graphs on 4 random images and the optimizer study."""
    steps = [1, 2, 3]
    loss = {"alpha": [2.0, 1.0, 0.5], "beta": [1.5, 0.6, 0.3]}
    accuracy = {"alpha": [0.5, 0.7, 0.9], "beta": [0.6, 0.8, 0.95]}
    x, y = torch.rand(4, 784), torch.tensor([0, 1, 2, 3])
    return ReportInputs(
        rows=ROWS,
        loss={n: pd.DataFrame({"step": steps, "loss": values}) for n, values in loss.items()},
        accuracy={n: pd.DataFrame({"step": steps, "accuracy": values}) for n, values in accuracy.items()},
        after_step={n: pd.DataFrame({"step": steps, "loss": values}) for n, values in AFTER_STEP.items()},
        lecture_cost=LECTURE_COST,
        confusion={n: pd.DataFrame({"actual": ACTUAL, "predicted": p}) for n, p in PREDICTED.items()},
        images=np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype=np.uint8),
        seed_noise=SEEDED,
        sweep=SWEEP,
        lecture_graph=autograd_graph.lecture_graph(),
        graphs={name: autograd_graph.variant_graphs(spec, x, y) for name, spec in SPECS.items()},
        optimizers=OPTIMIZERS,
        optimizer_curves=OPTIMIZER_CURVES,
        study=STUDY,
    )


def table_cells(fragment):
    """The text of the cells of each table row in ``fragment``."""
    rows = re.findall(r"<tr>(.*?)</tr>", fragment, re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows]


def test_summary_table_has_each_variant_formatted_and_extra_columns():
    header, alpha, beta = table_cells(summary_html(ROWS))
    assert header == [*KNOWN[:3], "biases", "dropout", "lecture", "reproduced", "difference (pp)", "seed std"]
    assert alpha == ["alpha", "784→10", "normal", "normal", "–", "30.00%", "35.00%", "+5.00", "0.00123"]
    assert beta == ["beta", "784→8→10", "xavier_uniform", "pytorch", "p = 0.3", "–", "92.50%", "–", "0.0005"]


def test_summary_table_shows_seed_statistics_as_the_markdown_does():
    seeded = [dict(ROWS[0], seeds=5, mean=0.98123, std=0.0012, min=0.9795, max=0.9831),
              dict(ROWS[1], seeds=5, mean=0.925, std=0.001, min=0.924, max=0.926)]
    header, alpha, beta = table_cells(summary_html(seeded))
    assert header[7:] == ["difference (pp)", "seed std", "mean ± std", "min–max"]
    assert alpha[7:] == ["+5.00", "0.00123", "98.12 ± 0.12%", "97.95%–98.31%"]
    assert beta[7:] == ["–", "0.0005", "92.50 ± 0.10%", "92.40%–92.60%"]


def test_report_has_sections_in_order_and_variants(inputs):
    page = build_report(inputs)
    order = [section.id for section in SECTIONS]
    positions = [page.index(f'<section id="{section}"') for section in order]
    assert positions == sorted(positions) and page.count("<section ") == len(order) == len(set(order))
    assert all(f'<a href="#{section.id}">{html.escape(section.heading)}</a>' in page for section in SECTIONS)
    for name in PREDICTED:
        assert f'id="confusion-{name}"' in page and f'id="gallery-{name}"' in page
    assert page.count("<style>") == 1 and "<script" not in page


def test_curves_are_inline_svg_with_searchable_variant_names(inputs):
    page = build_report(inputs)
    for chart in ["curve-loss", "curve-accuracy"]:
        figure = re.search(rf'<figure id="{chart}">\s*(<svg.*?</svg>)', page, re.S)
        assert figure, chart
        svg = figure.group(1)
        for name in PREDICTED:
            assert re.search(rf"<text[^>]*>{name}</text>", svg), (chart, name)
        assert len(svg) < 60_000


def test_lecture_curves_are_drawn_for_each_variant_the_lecture_printed(inputs):
    page = build_report(inputs)
    figure = re.search(r'<figure id="lecture-curve-alpha">\s*(<svg.*?</svg>)', page, re.S)
    assert figure and 'id="lecture-curve-beta"' not in page
    for label in ["lecture (TensorFlow lab)", "ours, after each step", "ours, before each step"]:
        assert re.search(rf"<text[^>]*>{re.escape(label)}</text>", figure.group(1)), label


def test_seed_noise_section_has_mean_and_std_and_the_steps_against_the_noise():
    summary, steps = (table_cells(t) for t in re.findall(r"<table.*?</table>", seed_noise_html(SEEDED), re.S))
    assert summary[0][-2:] == ["mean ± std", "min–max"] and summary[1][-2:] == ["35.00 ± 1.00%", "34.00%–36.00%"]
    assert steps[0] == ["step", "lecture (pp)", "reproduced, mean (pp)", "seed noise, 2 SE (pp)", "beyond the noise"]
    assert steps[1][0] == "alpha → beta" and steps[1][2] == "+57.00" and steps[1][4] == "yes"


def test_seed_noise_section_without_seeds_says_how_to_measure_them():
    assert "make seed-noise" in seed_noise_html(ROWS) and "<table" not in seed_noise_html(ROWS)


def test_sweep_section_has_a_chart_with_error_bars_and_a_row_per_keep_prob():
    fragment = sweep_html(SWEEP)
    chart = re.search(r'<figure id="sweep-chart">\s*(<svg.*?</svg>)', fragment, re.S).group(1)
    assert "beta: does dropout help?" in chart and "mean ± std" in chart
    header, *rows = table_cells(fragment[fragment.index("<table"):])
    assert header == ["keep_prob", "dropout", "seeds", "mean ± std", "min–max", "each seed"]
    assert [row[:3] for row in rows] == [["0.5", "p = 0.5", "2"], ["0.75", "p = 0.25", "2"], ["1", "–", "2"]]
    assert rows[0][3:] == ["93.00 ± 0.71%", "92.50%–93.50%", "92.50%, 93.50%"]


def test_graph_section_shows_the_lecture_and_dropout_in_train_and_eval_mode(inputs):
    fragment = graphs_html(inputs.lecture_graph, inputs.graphs)
    figures = dict(re.findall(r'<figure class="graph" id="graph-([\w-]+)">(.*?)</figure>', fragment, re.S))
    assert list(figures) == ["lecture", "alpha", "beta-train", "beta-eval"]
    assert "W_h 20×20" in figures["lecture"] and "TanhBackward0" in figures["lecture"]
    assert "the same in train and eval mode" in figures["alpha"] and "0.weight 10×784" in figures["alpha"]
    assert "MulBackward0" in figures["beta-train"] and "MulBackward0" not in figures["beta-eval"]


def test_optimizer_section_has_the_studys_table_and_curves():
    fragment = optimizers_html(OPTIMIZERS, OPTIMIZER_CURVES, STUDY)
    header, adam, ftrl = table_cells(fragment[fragment.index("<table"):fragment.index("</table>")])
    assert header[:3] == ["optimizer", "hyperparameters", "test accuracy"]
    assert header[3:] == ["final train loss", "epochs to 97% val"]
    assert adam == ["adam", "name=adam, lr=0.001", "97.00%", "0.0100", "2"]
    assert ftrl[4] == "never"
    chart = re.search(r'<figure id="optimizer-curves">\s*(<svg.*?</svg>)', fragment, re.S).group(1)
    assert all(re.search(rf"<text[^>]*>{name}</text>", chart) for name in ("adam", "ftrl"))


def test_report_is_the_same_to_the_byte_when_built_twice(inputs):
    assert build_report(inputs) == build_report(inputs)


def test_confusion_table_counts(inputs):
    header, *rows = table_cells(confusion_html("beta", inputs.confusion["beta"]))
    assert header[1:] == [str(d) for d in range(10)]
    counts = np.array([[int(cell) for cell in row[1:]] for row in rows])
    assert [row[0] for row in rows] == [str(d) for d in range(10)]
    expected = np.diag([4, 4, 4, 2, 4, 4, 4, 3, 4, 4])
    expected[3, 5], expected[7, 1] = 2, 1
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("name, wrong", [("alpha", range(14, 38)), ("beta", [3, 7, 13])])
def test_gallery_shows_the_first_misclassified_digits(inputs, name, wrong):
    gallery = gallery_html(name, inputs.confusion[name], inputs.images)
    total = int((PREDICTED[name] != ACTUAL).sum())
    assert f"{total} of {N} test images misclassified" in gallery
    assert gallery.count("<img ") == len(wrong) == min(24, total)
    captions = re.findall(r"true (\d) → predicted (\d)<br>#(\d+)", gallery)
    assert captions == [(str(ACTUAL[i]), str(PREDICTED[name][i]), str(i)) for i in wrong]
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" width="56" height="56"', gallery)
    assert len(images) == len(wrong)


def test_gallery_without_mistakes(inputs):
    gallery = gallery_html("perfect", pd.DataFrame({"actual": ACTUAL, "predicted": ACTUAL}), inputs.images)
    assert "0 of 40 test images misclassified" in gallery and "<img" not in gallery


def test_report_references_nothing_outside(inputs):
    page = build_report(inputs)
    links = re.findall(r"""\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?([^"'\s>]*)""", page)
    assert links, "expected the gallery's images at least"
    # the one link out: the playground page, which the report stage writes beside it
    assert all(link.startswith(("data:", "#")) or link == paths.PLAYGROUND.name for link in links), {
        link[:40] for link in links}
    assert "<script" not in page
    assert "url(" not in re.sub(r"url\(#\w+\)", "", page)  # only SVG's own clip paths
    assert "@import" not in page
    without_namespaces = re.sub(r'\bxmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", page)
    assert not re.search(r"(https?|ftp):", without_namespaces)


@pytest.fixture
def workspace(tmp_path, inputs, outside_repo):
    """A working folder holding the stage's inputs: params, summary, curves, confusion CSVs, a test split, seed noise,
    the sweep and the optimizer study."""
    (tmp_path / "metrics/sweeps").mkdir(parents=True)
    (tmp_path / "metrics/confusion").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    edit_yaml(tmp_path / "params.yaml", {
        "variants": {"alpha": {"hidden": [], "init": "normal", "bias_init": "normal"},
                     "beta": {"hidden": [8], "init": "xavier_uniform", "bias_init": "pytorch", "dropout": True}},
        "lecture_accuracy": {"alpha": 0.3},
        "lecture_cost": LECTURE_COST,
        "optimizer_study.variant": "alpha",
    })
    (tmp_path / "metrics/summary.json").write_text(json.dumps(inputs.rows))
    (tmp_path / "metrics/seed_noise.json").write_text(json.dumps(SEEDED))
    (tmp_path / "metrics/sweeps/keep_prob.json").write_text(json.dumps(SWEEP))
    (tmp_path / "metrics/optimizers.json").write_text(json.dumps(OPTIMIZERS))
    OPTIMIZER_CURVES.to_csv(tmp_path / "metrics/optimizers_val_accuracy.csv", index=False)
    for name in inputs.confusion:
        with Live(str(tmp_path / f"metrics/train/{name}"), dvcyaml=None, save_dvc_exp=False) as live:
            curves = zip(inputs.loss[name].itertuples(index=False), inputs.accuracy[name]["accuracy"])
            for (step, loss), accuracy in curves:
                live.step = step
                live.log_metric("train/loss", loss)
                live.log_metric("train/loss_after_step", AFTER_STEP[name][step - 1])
                live.log_metric("val/accuracy", accuracy)
                live.next_step()
        inputs.confusion[name].to_csv(tmp_path / f"metrics/confusion/{name}.csv", index=False)
    params = load_params(tmp_path / "params.yaml")
    (tmp_path / "metrics/eval").mkdir()
    (tmp_path / "models").mkdir()
    for name in params.variants:  # the test metrics of models trained with these params, and the models
        metrics = {"accuracy": 0.9, "loss": 0.3, "trained_with": params.trained_with(name)}
        (tmp_path / f"metrics/eval/{name}.json").write_text(json.dumps(metrics))
        spec = params.model_spec(name)
        torch.manual_seed(0)
        spec.save(spec.build(), tmp_path / paths.model_file(name), trained_with=params.trained_with(name))
    labels = torch.from_numpy(ACTUAL.astype(np.uint8))
    (tmp_path / "data/prepared").mkdir(parents=True)
    data.save_split(tmp_path / "data/prepared/test.safetensors", torch.from_numpy(inputs.images), labels)
    return tmp_path


def test_stage_writes_the_report(workspace, monkeypatch):
    assert run_stage(monkeypatch, workspace, "report") == 0
    page = (workspace / "metrics/report.html").read_text()
    assert 'id="gallery-alpha"' in page and 'id="gallery-beta"' in page
    assert "#37</figcaption>" in page and "#38</figcaption>" not in page  # alpha's 24th and 25th mistakes
    for figure in ["graph-lecture", "graph-alpha", "graph-beta-train", "graph-beta-eval", "sweep-chart",
                   "optimizer-curves", "lecture-curve-alpha"]:
        assert f'id="{figure}"' in page
    assert "98.00 ± 0.10%" not in page and "35.00 ± 1.00%" in page  # seed noise from its file
    playground = (workspace / paths.PLAYGROUND).read_text()
    assert '<script type="application/json" id="weights">{"alpha":[{"out":10,"in":784,' in playground
    assert '"beta":[{"out":8,"in":784,' in playground and playground.count("<script") == 2
    assert run_stage(monkeypatch, workspace, "report") == 0
    assert (workspace / "metrics/report.html").read_text() == page  # deterministic to the byte
    assert (workspace / paths.PLAYGROUND).read_text() == playground


@pytest.mark.parametrize("missing, says", [("metrics/sweeps/keep_prob.json", "run `make sweep`"),
                                           ("metrics/seed_noise.json", "run `make seed-noise`"),
                                           ("models/beta.safetensors", "train it with `dvc repro`")])
def test_stage_names_a_missing_committed_input_and_the_command_that_writes_it(workspace, monkeypatch, capsys, missing,
                                                                              says):
    (workspace / missing).unlink()
    assert run_stage(monkeypatch, workspace, "report") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and says in err
    assert not (workspace / paths.REPORT).exists() and not (workspace / paths.PLAYGROUND).exists()


def test_stage_refuses_confusion_data_of_another_test_set(workspace, monkeypatch, capsys):
    csv = workspace / "metrics/confusion/beta.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))
    assert run_stage(monkeypatch, workspace, "report") == 2
    err = capsys.readouterr().err
    assert "metrics/confusion/beta.csv: 39 rows for 40 test images; run `dvc repro evaluate@beta`" in err
    assert not (workspace / "metrics/report.html").exists()


@pytest.mark.parametrize(
    "missing, stage",
    [
        ("metrics/summary.json", "summarize"),
        ("metrics/train/beta/plots/metrics/val/accuracy.tsv", "train@beta"),
        ("metrics/confusion/alpha.csv", "evaluate@alpha"),
        ("data/prepared/test.safetensors", "prepare"),
        ("metrics/optimizers.json", "compare_optimizers"),
    ],
)
def test_stage_names_a_missing_input_and_its_stage(workspace, monkeypatch, capsys, missing, stage):
    (workspace / missing).unlink()
    assert run_stage(monkeypatch, workspace, "report") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and f"`dvc repro {stage}`" in err
    assert not (workspace / "metrics/report.html").exists()


def assert_visible(element, what):
    assert element.is_displayed(), f"{what} is not displayed"
    assert element.size["width"] > 0 and element.size["height"] > 0, f"{what} has size {element.size}"


def save_full_page(browser, path):
    """A PNG screenshot of the whole page, not just the window, at ``path``."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.browser
def test_report_in_headless_chromium(browser, inputs, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report(inputs))
    browser.get(page.as_uri())
    assert_visible(browser.find_element(By.CSS_SELECTOR, "#summary table"), "the summary table")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#summary tr")) == 1 + len(ROWS)
    curves = browser.find_elements(By.CSS_SELECTOR, "#curves svg")
    assert len(curves) == 2
    for svg in curves:
        assert_visible(svg, "a chart")
    for name in PREDICTED:
        assert_visible(browser.find_element(By.ID, f"confusion-{name}"), f"{name}'s confusion matrix")
    graphs = browser.find_elements(By.CSS_SELECTOR, "#graphs figure.graph svg")
    assert len(graphs) == 4  # the lecture's snippet, alpha, beta in train and in eval mode
    for svg in graphs:
        assert_visible(svg, "an autograd graph")
    assert "TanhBackward0" in browser.find_element(By.ID, "graph-lecture").text
    for chart in ["sweep-chart", "optimizer-curves"]:
        assert_visible(browser.find_element(By.CSS_SELECTOR, f"#{chart} svg"), chart)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#optimizers tr")) == 1 + len(OPTIMIZERS)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#seed-noise table")) == 2
    images = browser.find_elements(By.CSS_SELECTOR, "#gallery img")
    assert len(images) == 24 + 3
    for img in images:
        assert_visible(img, img.get_attribute("alt"))
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == 56
    screenshot = tmp_path / "report.png"
    save_full_page(browser, screenshot)
    assert screenshot.stat().st_size > 10_000


@pytest.mark.browser
def test_the_readme_picture_is_the_first_screen_of_the_page_it_names(chromium, inputs, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(build_report(inputs))
    picture = tmp_path / "docs/report.png"
    report_picture.take(page, picture, chromium[0])
    with Image.open(picture) as image:
        assert image.size == report_picture.SCREEN
        assert len(image.convert("RGB").getcolors(maxcolors=2**16) or range(2**16)) > 16  # drawn, not blank
    assert report_picture.source_digest(picture) == report_picture.sha256(page)


# ---- untrusted inputs: escaped on the page, plain text in the charts, refused when malformed --------------------

PAYLOAD = "<img src=x onerror=alert(1)>"


def test_every_string_reaches_the_page_escaped(inputs):
    rows = [dict(row, architecture=PAYLOAD, **{PAYLOAD: PAYLOAD}) for row in ROWS]
    sweep = dict(SWEEP, runs=[dict(run, seeds=[PAYLOAD, 1]) for run in SWEEP["runs"]])
    optimizers = [dict(row, hyperparameters=PAYLOAD) for row in OPTIMIZERS]
    page = build_report(dataclasses.replace(inputs, rows=rows, sweep=sweep, optimizers=optimizers))
    assert PAYLOAD not in page and "<img src=x" not in page
    assert page.count(html.escape(PAYLOAD)) >= 2 * len(rows) + len(OPTIMIZERS) + 1


@pytest.mark.parametrize("chart", ["line", "error_bar"])
def test_chart_text_is_plain_text_never_mathtext(chart):
    names = ["$x^2$", r"$\nope{$", "a$b"]  # mathtext would render the first as math and raise on the second
    if chart == "line":
        curves = {name: pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.5]}) for name in names}
        svg = charts.line_chart(curves, "step", "loss", (names[1], names[0], names[2]))
    else:
        svg = charts.error_bar_chart(sweep_table(SWEEP["runs"]), sweep_points(SWEEP["runs"]), r"$\nope{$ $x^2$")
        names = [r"$\nope{$ $x^2$"]
    texts = [html.unescape(text) for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert all(name in texts for name in names), texts


def edit_json(path, change):
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def edit_text(path, old, new):
    path.write_text(path.read_text().replace(old, new, 1))


def seeds_as(value):
    return lambda rows: [dict(row, seeds=value) for row in rows]


HOSTILE_FILES = {
    "seed noise: markup for seeds": (
        "metrics/seed_noise.json", seeds_as(PAYLOAD), f"0.seeds: Input should be a valid integer (got '{PAYLOAD}')"),
    "seed noise: half the statistics": (
        "metrics/seed_noise.json", lambda rows: [{k: v for k, v in row.items() if k != "mean"} for row in rows],
        "0: seeds, mean, std, min and max go together: all of them or none"),
    "sweep: markup for seeds": (
        "metrics/sweeps/keep_prob.json", lambda s: dict(s, runs=[dict(r, seeds=[PAYLOAD, 1]) for r in s["runs"]]),
        f"runs.0.seeds.0: Input should be a valid integer (got '{PAYLOAD}')"),
    "sweep: mathtext for the variant": (
        "metrics/sweeps/keep_prob.json", lambda s: dict(s, variant="$x$"), "variant: '$x$' is not a name"),
    "sweep: an accuracy short": (
        "metrics/sweeps/keep_prob.json", lambda s: dict(s, runs=[dict(r, accuracies=[0.9]) for r in s["runs"]]),
        "runs.0: 2 seeds but 1 accuracies"),
    "summary: a string for a number": (
        "metrics/summary.json", lambda rows: [dict(rows[0], reproduced_accuracy="0.9"), rows[1]],
        "0.reproduced_accuracy: Input should be a valid number (got '0.9')"),
    "summary: a variant twice": (
        "metrics/summary.json", lambda rows: [rows[0], rows[0]],
        "(top level): a variant appears twice in alpha, alpha"),
    "summary: markup for a variant": (
        "metrics/summary.json", lambda rows: [dict(rows[0], variant=PAYLOAD), rows[1]], "0.variant: '<img src=x"),
    "summary: a string for the cost distance": (
        "metrics/summary.json", lambda rows: [dict(rows[0], cost_distance="0.1"), rows[1]],
        "0.cost_distance: Input should be a valid number (got '0.1')"),
    "summary: a column of another table": (
        "metrics/summary.json", lambda rows: [dict(rows[0], test_accuracy="fast"), rows[1]],
        "0: test_accuracy: not a column of the summary"),
    "summary: an object in an extra column": (
        "metrics/summary.json", lambda rows: [dict(rows[0], seed_std={"a": 1}), rows[1]], "0.seed_std.str: Input"),
    "optimizers: infinity": (
        "metrics/optimizers.json", lambda rows: [dict(rows[0], final_train_loss=float("inf")), rows[1]],
        "0.final_train_loss: Input should be a finite number (got inf)"),
    "optimizers: no rows": ("metrics/optimizers.json", lambda rows: {}, "(top level): Input should be a valid list"),
}


@pytest.mark.parametrize("name, change, expected", HOSTILE_FILES.values(), ids=HOSTILE_FILES.keys())
def test_a_malformed_json_input_is_one_line_naming_file_and_field(workspace, monkeypatch, capsys, name, change,
                                                                  expected):
    edit_json(workspace / name, change)
    assert run_stage(monkeypatch, workspace, "report") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}: {expected}") and err.count("\n") == 1, err
    assert not (workspace / "metrics/report.html").exists()


HOSTILE_TABLES = {
    "confusion: a string for a digit": (
        "metrics/confusion/alpha.csv", "\n3,", "\nx,", "actual.3: Input should be a valid integer"),
    "confusion: a digit out of range": (
        "metrics/confusion/beta.csv", "\n3,3", "\n3,12",
        "predicted.23: Input should be less than or equal to 9 (got 12)"),
    "curve: a string for the loss": (
        "metrics/train/alpha/plots/metrics/train/loss.tsv", "\t1.0", "\tabc", "loss.1: Input should be a valid number"),
    "curve: not a number": (
        "metrics/train/beta/plots/metrics/val/accuracy.tsv", "\t0.8", "\tnan", "accuracy.1: Input should be a finite"),
    "optimizer curves: markup for a name": (
        "metrics/optimizers_val_accuracy.csv", ",adam\n", f",{PAYLOAD}\n", f"optimizer.0: '{PAYLOAD}' is not a name"),
}


@pytest.mark.parametrize("name, old, new, expected", HOSTILE_TABLES.values(), ids=HOSTILE_TABLES.keys())
def test_a_malformed_table_is_one_line_naming_file_and_column(workspace, monkeypatch, capsys, name, old, new,
                                                              expected):
    assert old in (workspace / name).read_text()
    edit_text(workspace / name, old, new)
    assert run_stage(monkeypatch, workspace, "report") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}: {expected}") and err.count("\n") == 1, err
    assert not (workspace / "metrics/report.html").exists()
