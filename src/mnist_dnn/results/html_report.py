"""The HTML report, one offline page: the lecture's table with seed noise, the keep_prob sweep, training curves,
confusion matrices, misclassified digits, autograd graphs and the optimizer study.

Every part of the page is a Jinja2 template (``render``) that escapes each value it is given, unless the value is
Markup: a part rendered here, or a chart's SVG. The page shows one ``ReportInputs``; it is the ``SECTIONS`` in order,
each a ``Section``: its id, its heading and the function that renders it from the inputs.
"""

import base64
import functools
import html
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jinja2 import Environment
from markupsafe import Markup
from PIL import Image

from mnist_dnn.lecture.config import OptimizerStudy
from mnist_dnn.results import autograd_graph, charts
from mnist_dnn.results.tables import (
    optimizer_headers,
    seed_noise_table,
    shown,
    summary_shown,
    sweep_points,
    sweep_shown,
    sweep_table,
)

GALLERY_SIZE = 24  # misclassified digits shown per variant
DIGIT_PIXELS = 56  # shown size of a digit, upscaled nearest-neighbour
BLUE, RED = "31, 119, 180", "214, 39, 40"  # confusion cells: correct, wrong

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1180px; margin: 2em auto; padding: 0 1em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
section { overflow-x: auto; }
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


def _escaped(value):
    """``value`` as HTML text, escaped as ``html.escape`` does (``'`` as ``&#x27;``, as the page always had it), unless
    it is Markup already: a fragment rendered here, or a chart's SVG."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


# The one way this page is written: Jinja2 templates, in which every value passes through _escaped.
_JINJA = Environment(autoescape=True, keep_trailing_newline=True, finalize=_escaped)


@functools.cache
def _template(source):
    return _JINJA.from_string(source)


def render(source, **values):
    """The Jinja2 template ``source`` rendered with ``values``, every one escaped but Markup, as Markup."""
    return Markup(_template(source).render(**values))


def joined(fragments, separator="\n"):
    """Rendered ``fragments`` joined by ``separator``; a fragment that is not Markup is escaped."""
    return Markup(separator).join(fragments)


def svg(chart):
    """A chart's SVG as Markup: matplotlib and autograd_graph.graph_svg escape the text they put in it."""
    return Markup(chart)


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows, as stages/report.py reads it from the pipeline's outputs."""

    rows: list[dict]  # the summary records (metrics/summary.json): the variants, in the page's order
    loss: dict[str, pd.DataFrame]  # name → ``step`` and ``loss`` per epoch, the loss before each step
    accuracy: dict[str, pd.DataFrame]  # name → ``step`` and ``accuracy`` per epoch, on the validation split
    after_step: dict[str, pd.DataFrame]  # name → ``step`` and ``loss`` per epoch, the loss after each step
    lecture_cost: dict[str, list[float]]  # name → the lecture's cost per epoch, for the variants it printed
    confusion: dict[str, pd.DataFrame]  # name → ``actual`` and ``predicted``, row i for test image i
    images: np.ndarray  # the test images, uint8 N×28×28
    seed_noise: list[dict]  # summary records with seed statistics (metrics/seed_noise.json)
    sweep: dict  # the keep_prob sweep (metrics/sweeps/keep_prob.json)
    lecture_graph: tuple  # the lecture's snippet's autograd graph: (nodes, edges)
    graphs: dict[str, dict]  # name → {"train": (nodes, edges), "eval": (nodes, edges)} on one batch
    optimizers: list[dict]  # the optimizer study's records (metrics/optimizers.json)
    optimizer_curves: pd.DataFrame  # its ``epoch``, ``val_accuracy`` and ``optimizer``
    study: OptimizerStudy  # params.yaml's optimizer_study

    @property
    def names(self):
        """The variants of the summary, in its order."""
        return [row["variant"] for row in self.rows]


TABLE = """<table class="data">
<tr>{% for h in headers %}<th{% if h in numeric %} class="num"{% endif %}>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for h, cell in row %}<td{% if h in numeric %} class="num"{% endif %}>{{ cell }}</td>\
{% endfor %}</tr>
{% endfor %}</table>"""


def table_html(table, headers=None):
    """``table`` formatted by its column definitions, as an HTML table; numbers right-aligned."""
    text, numeric = shown(table, headers)
    rows = [list(row.items()) for _, row in text.iterrows()]
    return render(TABLE, headers=list(text.columns), numeric=numeric, rows=rows)


def summary_html(rows):
    """The summary records (metrics/summary.json) as an HTML table."""
    return table_html(summary_shown(pd.DataFrame(rows)))


FIGURE = '<figure id="{{ key }}">\n{{ chart }}</figure>'
CURVES = '<div class="charts">\n{{ figures }}\n</div>'


def curves_section(inputs):
    """Two charts, training loss and validation accuracy per epoch, each with every variant of the summary."""
    loss = {name: inputs.loss[name] for name in inputs.names}
    accuracy = {name: inputs.accuracy[name] for name in inputs.names}
    figures = {
        "curve-loss": charts.line_chart(
            loss, "step", "loss", ("Training loss", "epoch", "loss (log scale)"), yscale="log"
        ),
        "curve-accuracy": charts.line_chart(
            accuracy, "step", "accuracy", ("Validation accuracy", "epoch", "accuracy (%)"), scale=100
        ),
    }
    return render(CURVES, figures=joined(render(FIGURE, key=key, chart=svg(chart)) for key, chart in figures.items()))


LECTURE_CURVES = """<p>The lecture's printed costs come from its TensorFlow labs, whose loop ran the optimizer step and
then the cost on the same batch: each epoch's cost is the mean over its batches of the loss <em>after</em> that
batch's step (with a fresh dropout mask in the dropout lab). The training loop here logs that cost beside the usual
one, the loss before each step, which sits well above it late in training. Distance: the mean over the epochs of
|log(ours / lecture's)| of the cost after each step, measured on every fifth batch.</p>
<p>Where a lecture number lies outside two standard deviations of the seeds here (the seed-noise table's "lecture
within 2σ"), it stays unexplained. For softmax regression, TensorFlow's split (the last 55,000 training images in file
order), TensorFlow 1.x's Adam (ε outside the bias correction) and training on all 60,000 images, as the slides'
PyTorch code does, were each tried by hand, and none reached the lecture's number; no command here remakes those
trials, so the report quotes none of their figures.</p>
<div class="charts">
{{ figures }}
</div>"""
LECTURE_CURVE = '<figure id="lecture-curve-{{ name }}">\n{{ chart }}</figure>'


def lecture_curves_section(inputs):
    """One chart per variant with a lecture curve: its cost per epoch before and after each step, and the lecture's,
    titled with the curve distance from the summary."""
    distances = {row["variant"]: row.get("cost_distance") for row in inputs.rows}
    figures = []
    for name, costs in inputs.lecture_cost.items():
        curves = {
            "lecture (TensorFlow lab)": pd.DataFrame({"step": range(1, len(costs) + 1), "loss": costs}),
            "ours, after each step": inputs.after_step[name],
            "ours, before each step": inputs.loss[name],
        }
        distance = distances.get(name)
        title = f"{name}: cost per epoch" + ("" if distance is None else f" (distance {distance:.3f})")
        chart = charts.line_chart(curves, "step", "loss", (title, "epoch", "cost (log scale)"), yscale="log")
        figures.append(render(LECTURE_CURVE, name=name, chart=svg(chart)))
    return render(LECTURE_CURVES, figures=joined(figures))


def confusion_counts(actual, predicted):
    """10×10 counts of (actual, predicted) digit pairs: row = actual, column = predicted."""
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (actual, predicted), 1)
    return counts


CONFUSION = """<figure class="confusion" id="confusion-{{ name }}">
<figcaption>{{ name }}</figcaption>
<table>
<tr><th title="actual ↓, predicted →">↓ →</th>{% for p in range(10) %}<th>{{ p }}</th>{% endfor %}</tr>
{% for row in rows %}<tr><th>{{ loop.index0 }}</th>{% for count, colour, shade in row %}\
{% if count == 0 %}<td class="zero">0</td>{% else %}<td{% if shade > 0.55 %} class="dark"{% endif %} \
style="background: rgba({{ colour }}, {{ "%.2f" % shade }})">{{ count }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</table>
</figure>"""


def confusion_html(name, pairs):
    """One variant's confusion matrix as an HTML table: correct counts shaded blue, errors red, each by its largest."""
    counts = confusion_counts(pairs["actual"].to_numpy(), pairs["predicted"].to_numpy())
    correct = np.eye(10, dtype=bool)
    largest = {True: counts[correct].max(), False: counts[~correct].max()}
    rows = [
        [(count, BLUE if a == p else RED, count / largest[a == p] if count else 0) for p, count in enumerate(row)]
        for a, row in enumerate(counts)
    ]
    return render(CONFUSION, name=name, rows=rows)


CONFUSION_SECTION = """<p>Test images by actual digit (rows) and predicted digit (columns). Blue: correct, red: \
mistakes;
each shaded relative to the largest count of its colour.</p>
<div class="matrices">
{{ matrices }}
</div>"""


def confusion_section(inputs):
    """Each variant's confusion matrix."""
    return render(CONFUSION_SECTION, matrices=joined(confusion_html(n, inputs.confusion[n]) for n in inputs.names))


def png_data_url(image):
    """A uint8 grayscale image as a data: URL of a PNG, upscaled to DIGIT_PIXELS square, nearest-neighbour."""
    png = io.BytesIO()
    Image.fromarray(image).resize((DIGIT_PIXELS, DIGIT_PIXELS), Image.Resampling.NEAREST).save(png, format="PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()


GALLERY = """<div class="variant" id="gallery-{{ name }}">
<h3>{{ name }}: {{ wrong }} of {{ total }} test images misclassified\
{% if wrong %}; the first {{ digits|length }} by test index{% endif %}</h3>
<div class="digits">
{% for i, url, truth, guess in digits %}<figure class="digit"><img src="{{ url }}" width="{{ size }}" \
height="{{ size }}" alt="test image {{ i }}"><figcaption>true {{ truth }} → predicted {{ guess }}<br>#{{ i }}\
</figcaption></figure>
{% endfor %}</div>
</div>"""


def gallery_html(name, pairs, images):
    """One variant's first GALLERY_SIZE misclassified test digits, by test index, captioned with both labels."""
    actual, predicted = pairs["actual"].to_numpy(), pairs["predicted"].to_numpy()
    wrong = np.flatnonzero(actual != predicted)
    digits = [(i, png_data_url(images[i]), actual[i], predicted[i]) for i in wrong[:GALLERY_SIZE]]
    return render(GALLERY, name=name, wrong=len(wrong), total=len(actual), digits=digits, size=DIGIT_PIXELS)


def gallery_section(inputs):
    """Each variant's misclassified test digits."""
    return joined(gallery_html(name, inputs.confusion[name], inputs.images) for name in inputs.names)


SEED_NOISE = """<p>Each variant trained with {{ seeds }} seeds (train.seed and <code>extra_seeds</code>), written by \
<code>make seed-noise</code>.</p>
{{ summary }}
<p>Each step of the lecture's story as the difference of mean test accuracies; it is beyond the noise when larger \
than two standard errors of that difference.</p>
{{ steps }}"""


def seed_noise_html(rows):
    """The seed-noise section's body from a summary with seed statistics (metrics/seed_noise.json), else a hint."""
    table = pd.DataFrame(rows)
    if "mean" not in table:
        return render("<p>Not measured yet: <code>make seed-noise</code> writes metrics/seed_noise.json.</p>")
    return render(SEED_NOISE, seeds=table["seeds"].iloc[0], summary=table_html(summary_shown(table)),
                  steps=table_html(seed_noise_table(table)))


SWEEP = """<p>{{ variant }} trained with each keep_prob and seeds {{ seeds }} (<code>make sweep</code>, on DVC's \
experiment queue); keep_prob = 1 is no dropout. Error bars: one standard deviation over the seeds; grey dots: single \
runs. The queue's workers run one thread each; with the portable numerics the thread count does not change a bit, so \
the sweep's run of the table's keep_prob and seed is the table's run.</p>
<figure id="sweep-chart">
{{ chart }}</figure>
{{ table }}"""


def sweep_html(sweep):
    """The keep_prob sweep (metrics/sweeps/keep_prob.json): its chart with seed error bars, and its table."""
    table = sweep_table(sweep["runs"])
    chart = charts.error_bar_chart(table, sweep_points(sweep["runs"]), f"{sweep['variant']}: does dropout help?")
    seeds = ", ".join(map(str, sweep["runs"][0]["seeds"]))
    return render(SWEEP, variant=sweep["variant"], seeds=seeds, chart=svg(chart), table=table_html(sweep_shown(table)))


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
    return joined(figures)


GRAPH = """<figure class="graph" id="graph-{{ key }}">
<figcaption>{{ caption }}: {{ nodes }} nodes</figcaption>
{{ chart }}
</figure>"""


def _graph_figure(key, caption, nodes_edges):
    nodes, edges = nodes_edges
    chart = autograd_graph.graph_svg(nodes, edges, f"autograd graph: {caption}", key.replace("-", "_"))
    return render(GRAPH, key=key, caption=caption, nodes=len(nodes), chart=svg(chart))


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
GRAPHS = GRAPHS_INTRO + '<div class="graphs">\n{{ figures }}\n</div>'


def graphs_section(inputs):
    """The autograd graphs, after an introduction that quotes the lecture's snippet."""
    return render(GRAPHS, figures=graphs_html(inputs.lecture_graph, inputs.graphs))


OPTIMIZERS = """<p>{{ variant }} trained with each of the lecture's optimizers, the same seed and data order.</p>
{{ table }}
<div class="charts"><figure id="optimizer-curves">
{{ chart }}</figure></div>"""


def optimizers_html(records, curves, study):
    """The optimizer study: its table (metrics/optimizers.json) and validation accuracy per epoch, by optimizer."""
    by_optimizer = {name: curve for name, curve in curves.groupby("optimizer", sort=False)}
    chart = charts.line_chart(
        by_optimizer, "epoch", "val_accuracy", ("Validation accuracy, by optimizer", "epoch", "accuracy (%)"), scale=100
    )
    table = table_html(pd.DataFrame(records).astype({"epochs_to_target": "Int64"}), optimizer_headers(study))
    return render(OPTIMIZERS, variant=study.variant, table=table, chart=svg(chart))


@dataclass(frozen=True)
class Section:
    """One section of the page: its id (the anchor), its heading, and ``render(inputs)``, its HTML."""

    id: str
    heading: str
    render: Callable[[ReportInputs], Markup]


SECTIONS = [  # the page's sections, in its order: its table of contents and its body
    Section("summary", "Test accuracy", lambda inputs: summary_html(inputs.rows)),
    Section("seed-noise", "Seed noise: how much of the table is noise?",
            lambda inputs: seed_noise_html(inputs.seed_noise)),
    Section("sweep", "Does dropout help? A keep_prob sweep", lambda inputs: sweep_html(inputs.sweep)),
    Section("curves", "Training curves", curves_section),
    Section("lecture-curves", "Cost per epoch against the lecture's", lecture_curves_section),
    Section("confusion", "Confusion matrices", confusion_section),
    Section("gallery", "Misclassified test digits", gallery_section),
    Section("graphs", "Back-propagation with a graph, created on the fly", graphs_section),
    Section("optimizers", "The lecture's optimizers",
            lambda inputs: optimizers_html(inputs.optimizers, inputs.optimizer_curves, inputs.study)),
]
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MNIST: the lecture's table, reproduced</title>
<style>{{ style }}</style>
</head>
<body>
<h1>MNIST: the lecture's table, reproduced</h1>
<p><a href="playground.html">Draw a digit</a> for the trained variants to predict (a page of its own).</p>
<nav>{% for section in sections %}{% if not loop.first %} · {% endif %}\
<a href="#{{ section.id }}">{{ section.heading }}</a>{% endfor %}</nav>
{% for section in sections %}<section id="{{ section.id }}">
<h2>{{ section.heading }}</h2>
{{ section.render(inputs) }}
</section>
{% endfor %}</body>
</html>
"""


def build_report(inputs):
    """The whole page for ``inputs`` (a ReportInputs): each of SECTIONS, in order."""
    return render(PAGE, style=Markup(STYLE), sections=SECTIONS, inputs=inputs)
