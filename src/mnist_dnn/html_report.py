"""The HTML report, one offline page: the lecture's table with seed noise, the keep_prob sweep, training curves,
confusion matrices, misclassified digits, autograd graphs and the optimizer study."""

import base64
import html
import io

import numpy as np
import pandas as pd
from PIL import Image

from mnist_dnn import charts, graph
from mnist_dnn.tables import (
    optimizer_headers, seed_noise_table, shown, summary_shown, sweep_points, sweep_shown, sweep_table,
)

GALLERY_SIZE = 24  # misclassified digits shown per variant
DIGIT_PIXELS = 56  # shown size of a digit, upscaled nearest-neighbour
BLUE, RED = "31, 119, 180", "214, 39, 40"  # confusion cells: correct, wrong

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1180px; margin: 2em auto; padding: 0 1em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; }
th, td { padding: .25em .6em; }
table.data th, table.data td { border-bottom: 1px solid #e4e4e4; text-align: left; }
table.data .num { text-align: right; font-variant-numeric: tabular-nums; }
.charts, .matrices { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; }
.charts svg { max-width: 100%; height: auto; }
.confusion td, .confusion th { width: 2.6em; text-align: center; font-size: 13px; font-variant-numeric: tabular-nums; }
.confusion td { border: 1px solid #eee; }
.confusion td.zero { color: #ccc; }
.confusion td.dark { color: #fff; }
.confusion figcaption, .variant h3 { font-weight: 600; margin: 0 0 .3em; font-size: 1em; }
.variant { margin-bottom: 1.6em; }
.digits { display: flex; flex-wrap: wrap; gap: .6em; }
.digit { text-align: center; font-size: 12px; }
.digit img { display: block; margin: 0 auto; }
nav { font-size: 14px; }
.graphs { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.graph figcaption { font-weight: 600; margin-bottom: .3em; }
pre { background: #f6f6f6; padding: .6em .8em; }
"""


def table_html(table, headers=None):
    """``table`` formatted by its column definitions, as an HTML table; numbers right-aligned."""
    text, numeric = shown(table, headers)
    align = {h: ' class="num"' if h in numeric else "" for h in text.columns}
    header = "".join(f"<th{align[h]}>{html.escape(h)}</th>" for h in text.columns)
    body = "".join(
        "<tr>" + "".join(f"<td{align[h]}>{html.escape(cell)}</td>" for h, cell in row.items()) + "</tr>\n"
        for _, row in text.iterrows()
    )
    return f'<table class="data">\n<tr>{header}</tr>\n{body}</table>'


def summary_html(rows):
    """The summary records (metrics/summary.json) as an HTML table."""
    return table_html(summary_shown(pd.DataFrame(rows)))


def curves_html(loss, accuracy):
    """Two charts, training loss and validation accuracy per epoch, all variants in each."""
    figures = {
        "curve-loss": charts.line_chart(
            loss, "step", "loss", "Training loss", "epoch", "loss (log scale)", yscale="log"
        ),
        "curve-accuracy": charts.line_chart(
            accuracy, "step", "accuracy", "Validation accuracy", "epoch", "accuracy (%)", scale=100
        ),
    }
    return "\n".join(f'<figure id="{key}">\n{svg}</figure>' for key, svg in figures.items())


LECTURE_CURVES_INTRO = """<p>The lecture's printed costs come from its TensorFlow labs, whose loop ran the optimizer step and
then the cost on the same batch: each epoch's cost is the mean over its batches of the loss <em>after</em> that
batch's step (with a fresh dropout mask in the dropout lab). The training loop here logs that cost beside the usual
one, the loss before each step, which sits well above it late in training. Distance: the mean over the epochs of
|log(ours / lecture's)| of the cost after each step.</p>
"""


def lecture_curves_html(before, after, lecture, distances):
    """One chart per variant with a lecture curve: its cost per epoch before and after each step, and the lecture's.

    ``before``, ``after``: name → DataFrame of ``step`` and ``loss``; ``lecture``: name → the lecture's costs;
    ``distances``: name → the curve distance from the summary.
    """
    figures = []
    for name, costs in lecture.items():
        curves = {
            "lecture (TensorFlow lab)": pd.DataFrame({"step": range(1, len(costs) + 1), "loss": costs}),
            "ours, after each step": after[name],
            "ours, before each step": before[name],
        }
        distance = distances.get(name)
        title = f"{name}: cost per epoch" + ("" if distance is None else f" (distance {distance:.3f})")
        svg = charts.line_chart(curves, "step", "loss", title, "epoch", "cost (log scale)", yscale="log")
        figures.append(f'<figure id="lecture-curve-{html.escape(name)}">\n{svg}</figure>')
    return LECTURE_CURVES_INTRO + '<div class="charts">\n' + "\n".join(figures) + "\n</div>"


def confusion_counts(actual, predicted):
    """10×10 counts of (actual, predicted) digit pairs: row = actual, column = predicted."""
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (actual, predicted), 1)
    return counts


def confusion_html(name, pairs):
    """One variant's confusion matrix as an HTML table: correct counts shaded blue, errors red, each by its largest."""
    counts = confusion_counts(pairs["actual"].to_numpy(), pairs["predicted"].to_numpy())
    correct = np.eye(10, dtype=bool)
    largest = {True: counts[correct].max(), False: counts[~correct].max()}
    rows = []
    for actual in range(10):
        cells = "".join(_confusion_cell(counts[actual, p], actual == p, largest[actual == p]) for p in range(10))
        rows.append(f"<tr><th>{actual}</th>{cells}</tr>")
    header = "".join(f"<th>{p}</th>" for p in range(10))
    return (
        f'<figure class="confusion" id="confusion-{html.escape(name)}">\n'
        f"<figcaption>{html.escape(name)}</figcaption>\n"
        f'<table>\n<tr><th title="actual ↓, predicted →">↓ →</th>{header}</tr>\n'
        + "\n".join(rows)
        + "\n</table>\n</figure>"
    )


def _confusion_cell(count, correct, largest):
    if count == 0:
        return '<td class="zero">0</td>'
    shade = count / largest
    dark = ' class="dark"' if shade > 0.55 else ""
    return f'<td{dark} style="background: rgba({BLUE if correct else RED}, {shade:.2f})">{count}</td>'


def png_data_url(image):
    """A uint8 grayscale image as a data: URL of a PNG, upscaled to DIGIT_PIXELS square, nearest-neighbour."""
    png = io.BytesIO()
    Image.fromarray(image).resize((DIGIT_PIXELS, DIGIT_PIXELS), Image.Resampling.NEAREST).save(png, format="PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()


def gallery_html(name, pairs, images):
    """One variant's first GALLERY_SIZE misclassified test digits, by test index, captioned with both labels."""
    actual, predicted = pairs["actual"].to_numpy(), pairs["predicted"].to_numpy()
    wrong = np.flatnonzero(actual != predicted)
    digits = "".join(
        f'<figure class="digit"><img src="{png_data_url(images[i])}" width="{DIGIT_PIXELS}" height="{DIGIT_PIXELS}"'
        f' alt="test image {i}"><figcaption>true {actual[i]} → predicted {predicted[i]}<br>#{i}</figcaption>'
        "</figure>\n"
        for i in wrong[:GALLERY_SIZE]
    )
    shown = f"; the first {min(len(wrong), GALLERY_SIZE)} by test index" if len(wrong) else ""
    return (
        f'<div class="variant" id="gallery-{html.escape(name)}">\n'
        f"<h3>{html.escape(name)}: {len(wrong)} of {len(actual)} test images misclassified{shown}</h3>\n"
        f'<div class="digits">\n{digits}</div>\n</div>'
    )


def seed_noise_html(rows):
    """The seed-noise section's body from a summary with seed statistics (metrics/seed_noise.json), else a hint."""
    table = pd.DataFrame(rows)
    if "mean" not in table:
        return "<p>Not measured yet: <code>make seed-noise</code> writes metrics/seed_noise.json.</p>"
    return (
        f"<p>Each variant trained with {table['seeds'].iloc[0]} seeds (train.seed and <code>extra_seeds</code>), "
        "written by <code>make seed-noise</code>.</p>\n"
        + table_html(summary_shown(table))
        + "\n<p>Each step of the lecture's story as the difference of mean test accuracies; it is beyond the noise "
        "when larger than two standard errors of that difference.</p>\n"
        + table_html(seed_noise_table(table))
    )


def sweep_html(sweep):
    """The keep_prob sweep (metrics/sweeps/keep_prob.json): its chart with seed error bars, and its table."""
    table = sweep_table(sweep["runs"])
    chart = charts.error_bar_chart(table, sweep_points(sweep["runs"]), f"{sweep['variant']}: does dropout help?")
    seeds = ", ".join(map(str, sweep["runs"][0]["seeds"]))
    return (
        f"<p>{html.escape(sweep['variant'])} trained with each keep_prob and seeds {seeds} (<code>make sweep</code>, "
        "on DVC's experiment queue); keep_prob = 1 is no dropout. Error bars: one standard deviation over the seeds; "
        "grey dots: single runs. The queue's workers run one thread each; with the portable numerics the thread count "
        "does not change a bit, so the sweep's run of the table's keep_prob and seed is the table's run.</p>\n"
        f'<figure id="sweep-chart">\n{chart}</figure>\n' + table_html(sweep_shown(table))
    )


def graphs_html(lecture, variants):
    """The lecture's snippet's autograd graph, then each variant's on one batch; dropout's in train and eval mode.

    ``lecture``: (nodes, edges); ``variants``: name → {"train": (nodes, edges), "eval": (nodes, edges)}.
    """
    figures = [_graph_figure("lecture", "the lecture's snippet", lecture)]
    for name, modes in variants.items():
        if modes["train"] == modes["eval"]:
            figures.append(_graph_figure(name, f"{name} (the same in train and eval mode)", modes["train"]))
        else:
            figures += [_graph_figure(f"{name}-{m}", f"{name}, {m} mode", modes[m]) for m in ("train", "eval")]
    return "\n".join(figures)


def _graph_figure(key, caption, nodes_edges):
    nodes, edges = nodes_edges
    svg = graph.graph_svg(nodes, edges, f"autograd graph: {caption}", key.replace("-", "_"))
    return (
        f'<figure class="graph" id="graph-{html.escape(key)}">\n<figcaption>{html.escape(caption)}: '
        f"{len(nodes)} nodes</figcaption>\n{svg}\n</figure>"
    )


GRAPHS_INTRO = """<p>PyTorch records each operation of the forward pass as it runs; <code>loss.backward()</code> then
walks that graph from <code>loss.grad_fn</code> through each node's <code>next_functions</code>. These are the graphs
PyTorch built, walked that way: nodes as PyTorch names them, leaves (<code>AccumulateGrad</code>, shaded) with their
tensor's name and shape. Inputs that need no gradient (the images, <code>x</code>, <code>prev_h</code>) are not
nodes. The lecture's snippet:</p>
<pre>W_h = torch.randn(20, 20, requires_grad=True)
W_x = torch.randn(20, 10, requires_grad=True)
x = torch.randn(1, 10)
prev_h = torch.randn(1, 20)
next_h = (W_h @ prev_h.T + W_x @ x.T).tanh()
loss = next_h.sum()
loss.backward()</pre>
<p>and each variant's model with its cross-entropy loss on one batch of test images. The graph is built on the fly:
the dropout variant's graph in train mode has a <code>MulBackward0</code> (the mask) after each ReLU, and in eval
mode, where dropout passes its input through, it has none.</p>
"""


def optimizers_html(records, curves, study):
    """The optimizer study: its table (metrics/optimizers.json) and validation accuracy per epoch, by optimizer."""
    by_optimizer = {name: curve for name, curve in curves.groupby("optimizer", sort=False)}
    chart = charts.line_chart(
        by_optimizer, "epoch", "val_accuracy", "Validation accuracy, by optimizer", "epoch", "accuracy (%)", scale=100
    )
    return (
        f"<p>{html.escape(study.variant)} trained with each of the lecture's optimizers, the same seed and data "
        "order.</p>\n"
        + table_html(pd.DataFrame(records).astype({"epochs_to_target": "Int64"}), optimizer_headers(study))
        + f'\n<div class="charts"><figure id="optimizer-curves">\n{chart}</figure></div>'
    )


SECTIONS = {  # id → heading, in the page's order
    "summary": "Test accuracy",
    "seed-noise": "Seed noise: how much of the table is noise?",
    "sweep": "Does dropout help? A keep_prob sweep",
    "curves": "Training curves",
    "lecture-curves": "Cost per epoch against the lecture's",
    "confusion": "Confusion matrices",
    "gallery": "Misclassified test digits",
    "graphs": "Back-propagation with a graph, created on the fly",
    "optimizers": "The lecture's optimizers",
}


def build_report(rows, loss, accuracy, confusion, images, *, seed_noise, sweep, lecture_curves, graphs, optimizers):
    """The whole page, for the variants of the summary records ``rows``, in their order.

    ``loss``, ``accuracy``: name → DataFrame of ``step`` and ``loss`` or ``accuracy`` per epoch;
    ``confusion``: name → DataFrame of ``actual`` and ``predicted``, row i for test image i;
    ``images``: the test images, uint8 N×28×28; ``seed_noise``: summary records with seed statistics;
    ``sweep``: the keep_prob sweep's JSON; ``lecture_curves``: the costs after each step and the lecture's, as the
    arguments ``after`` and ``lecture`` of lecture_curves_html; ``graphs``: the arguments of graphs_html;
    ``optimizers``: those of optimizers_html.
    """
    names = [row["variant"] for row in rows]
    matrices = "\n".join(confusion_html(n, confusion[n]) for n in names)
    body = {
        "summary": summary_html(rows),
        "seed-noise": seed_noise_html(seed_noise),
        "sweep": sweep_html(sweep),
        "curves": '<div class="charts">\n'
        + curves_html({n: loss[n] for n in names}, {n: accuracy[n] for n in names})
        + "\n</div>",
        "lecture-curves": lecture_curves_html(
            loss, *lecture_curves, {row["variant"]: row.get("cost_distance") for row in rows}
        ),
        "confusion": "<p>Test images by actual digit (rows) and predicted digit (columns). Blue: correct, red: "
        "mistakes;\neach shaded relative to the largest count of its colour.</p>\n"
        f'<div class="matrices">\n{matrices}\n</div>',
        "gallery": "\n".join(gallery_html(n, confusion[n], images) for n in names),
        "graphs": GRAPHS_INTRO + '<div class="graphs">\n' + graphs_html(*graphs) + "\n</div>",
        "optimizers": optimizers_html(*optimizers),
    }
    contents = " · ".join(f'<a href="#{key}">{html.escape(heading)}</a>' for key, heading in SECTIONS.items())
    sections = "\n".join(
        f'<section id="{key}">\n<h2>{html.escape(heading)}</h2>\n{body[key]}\n</section>'
        for key, heading in SECTIONS.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MNIST: the lecture's table, reproduced</title>
<style>{STYLE}</style>
</head>
<body>
<h1>MNIST: the lecture's table, reproduced</h1>
<nav>{contents}</nav>
{sections}
</body>
</html>
"""
