"""Charts as inline SVG (matplotlib), deterministic to the byte: per-epoch curves and a sweep with error bars.

Titles, labels and legend entries are plain text: never read as mathtext, whatever ``$`` they hold.
"""

import io
from contextlib import contextmanager

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


@contextmanager
def _svg_figure(title, result):
    """A figure to draw on; on exit, its SVG (without XML declaration and DOCTYPE) is appended to ``result``."""
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": title, "font.size": 9}):
        fig = Figure(figsize=(5.6, 3.5), layout="constrained")
        yield fig
        svg = io.StringIO()
        fig.savefig(svg, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = svg.getvalue()
    result.append(svg[svg.index("<svg") :])


def line_chart(curves, x, column, labels, scale=1, yscale="linear"):
    """An SVG chart of ``column`` (times ``scale``) against ``x``: a line per name → DataFrame of ``curves``, with
    ``labels = (title, x label, y label)``."""
    title, xlabel, ylabel = labels
    result = []
    with _svg_figure(title, result) as fig:
        ax = fig.subplots()
        for name, curve in curves.items():
            ax.plot(curve[x], curve[column] * scale, marker=".", label=name)
        _label(ax, title, xlabel, ylabel)
        ax.set(yscale=yscale)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        _plain(ax.legend(fontsize="small", ncols=2 if len(curves) > 5 else 1).get_texts())
    return result[0]


def error_bar_chart(table, runs, title):
    """An SVG chart of test accuracy against keep_prob: each seed's run as a dot, the mean ± std as an error bar.

    ``table``: one row per keep_prob with ``mean`` and ``std``; ``runs``: rows of ``keep_prob`` and ``accuracy``.
    """
    result = []
    with _svg_figure(title, result) as fig:
        ax = fig.subplots()
        ax.plot(runs["keep_prob"], runs["accuracy"] * 100, ".", color="0.6", label="one seed")
        ax.errorbar(table["keep_prob"], table["mean"] * 100, yerr=table["std"] * 100, marker="o", capsize=4,
                    label="mean ± std")
        _label(ax, title, "keep_prob (dropout p = 1 − keep_prob)", "test accuracy (%)")
        ax.set_xticks(table["keep_prob"])
        ax.grid(alpha=0.3)
        _plain(ax.legend(fontsize="small").get_texts())
    return result[0]


def _label(ax, title, xlabel, ylabel):
    """Set the title and axis labels of ``ax`` as plain text."""
    _plain([ax.set_title(title), ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)])


def _plain(texts):
    """Show each matplotlib Text of ``texts`` as the characters it holds: no mathtext."""
    for text in texts:
        text.set_parse_math(False)
