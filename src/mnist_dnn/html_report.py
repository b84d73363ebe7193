"""The HTML report: summary table, training curves, confusion matrices, misclassified digits; one offline page."""

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from mnist_dnn.tables import shown, summary_shown

GALLERY_SIZE = 24  # misclassified digits shown per variant
DIGIT_PIXELS = 56  # shown size of a digit, upscaled nearest-neighbour
BLUE, RED = "31, 119, 180", "214, 39, 40"  # confusion cells: correct, wrong

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1180px; margin: 2em auto; padding: 0 1em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; }
th, td { padding: .25em .6em; }
#summary th, #summary td { border-bottom: 1px solid #e4e4e4; text-align: left; }
#summary .num { text-align: right; font-variant-numeric: tabular-nums; }
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
    return f"<table>\n<tr>{header}</tr>\n{body}</table>"


def summary_html(rows):
    """The summary records (metrics/summary.json) as an HTML table."""
    return table_html(summary_shown(pd.DataFrame(rows)))


def line_chart(curves, column, title, ylabel, scale=1, yscale="linear"):
    """An SVG chart of ``column`` (times ``scale``) against ``step``: a line per name → DataFrame of ``curves``."""
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": title, "font.size": 9}):
        fig = Figure(figsize=(5.6, 3.5), layout="constrained")
        ax = fig.subplots()
        for name, curve in curves.items():
            ax.plot(curve["step"], curve[column] * scale, marker=".", label=name)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel, yscale=yscale)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        svg = io.StringIO()
        fig.savefig(svg, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = svg.getvalue()
    return svg[svg.index("<svg") :]  # without the XML declaration and DOCTYPE


def curves_html(loss, accuracy):
    """Two charts, training loss and validation accuracy per epoch, all variants in each."""
    charts = {
        "curve-loss": line_chart(loss, "loss", "Training loss", "loss (log scale)", yscale="log"),
        "curve-accuracy": line_chart(accuracy, "accuracy", "Validation accuracy", "accuracy (%)", scale=100),
    }
    return "\n".join(f'<figure id="{key}">\n{svg}</figure>' for key, svg in charts.items())


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


def build_report(rows, loss, accuracy, confusion, images):
    """The whole page, for the variants of the summary records ``rows``, in their order.

    ``loss``, ``accuracy``: name → DataFrame of ``step`` and ``loss`` or ``accuracy`` per epoch;
    ``confusion``: name → DataFrame of ``actual`` and ``predicted``, row i for test image i;
    ``images``: the test images, uint8 N×28×28.
    """
    names = [row["variant"] for row in rows]
    curves = curves_html({n: loss[n] for n in names}, {n: accuracy[n] for n in names})
    matrices = "\n".join(confusion_html(n, confusion[n]) for n in names)
    galleries = "\n".join(gallery_html(n, confusion[n], images) for n in names)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MNIST: the lecture's table, reproduced</title>
<style>{STYLE}</style>
</head>
<body>
<h1>MNIST: the lecture's table, reproduced</h1>
<section id="summary">
<h2>Test accuracy</h2>
{summary_html(rows)}
</section>
<section id="curves">
<h2>Training curves</h2>
<div class="charts">
{curves}
</div>
</section>
<section id="confusion">
<h2>Confusion matrices</h2>
<p>Test images by actual digit (rows) and predicted digit (columns). Blue: correct, red: mistakes;
each shaded relative to the largest count of its colour.</p>
<div class="matrices">
{matrices}
</div>
</section>
<section id="gallery">
<h2>Misclassified test digits</h2>
{galleries}
</section>
</body>
</html>
"""
