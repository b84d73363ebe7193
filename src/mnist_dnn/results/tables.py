"""The result tables (pandas), and each column declared once: how it reads in the Markdown and the HTML output
(what its values must be is outputs.py's)."""

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd


def percent(fraction):
    """A fraction as a percentage with two decimals; – for none."""
    return "–" if fraction is None or pd.isna(fraction) else f"{100 * fraction:.2f}%"


def signed_pp(pp):
    """Percentage points with their sign; – for none."""
    return "–" if pp is None or pd.isna(pp) else f"{pp:+.2f}"


def dropout_text(p):
    """A dropout probability as ``p = 0.3``; – for none."""
    return f"p = {p:g}" if p else "–"


def _other(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _yes_no(flag):
    return "yes" if flag else "no"


@dataclass(frozen=True)
class Column:
    """How a column reads: its header, the format of a value, and what a missing value shows."""

    key: str
    header: str
    fmt: Callable[[Any], str] = str
    missing: str = "–"


SUMMARY = [  # the summary's columns, in their order
    Column("variant", "variant"),
    Column("architecture", "architecture"),
    Column("init", "init"),
    Column("bias_init", "biases"),
    Column("dropout", "dropout", dropout_text),
    Column("lecture_accuracy", "lecture", percent),
    Column("reproduced_accuracy", "reproduced", percent),
    Column("difference_pp", "difference (pp)", signed_pp),
    Column("seeds", "seeds"),
    Column("mean", "mean", _other),
    Column("std", "std", _other),
    Column("min", "min", _other),
    Column("max", "max", _other),
    Column("mean_std", "mean ± std"),
    Column("min_max", "min–max"),
    Column("within_noise", "lecture within 2σ", _yes_no),
    Column("cost_distance", "cost vs lecture", lambda d: f"{d:.3f}"),
    Column("epochs_inside", "lecture's cost inside seeds"),
]
COLUMNS = {column.key: column for column in [  # every table's columns by key; keys not listed show as they are
    *SUMMARY,
    Column("step", "step"),
    Column("lecture_step_pp", "lecture (pp)", signed_pp),
    Column("mean_step_pp", "reproduced, mean (pp)", signed_pp),
    Column("noise_pp", "seed noise, 2 SE (pp)", lambda pp: f"{pp:.2f}"),
    Column("beyond_noise", "beyond the noise", _yes_no),
    Column("optimizer", "optimizer"),
    Column("hyperparameters", "hyperparameters"),
    Column("test_accuracy", "test accuracy", percent),
    Column("final_train_loss", "final train loss", lambda loss: f"{loss:.4f}"),
    Column("epochs_to_target", "epochs to target", lambda epoch: str(int(epoch)), missing="never"),
    Column("keep_prob", "keep_prob", lambda p: f"{p:g}"),
    Column("runs", "each seed"),
]}
_POSITION = {column.key: i for i, column in enumerate(SUMMARY)}
SEED_STATISTICS = ["seeds", "mean", "std", "min", "max"]


def shown(table, headers=None):
    """``table`` as text for display: each value formatted, columns renamed to their headers (``headers`` overrides).

    Also returns the headers of the columns that hold numbers, which read best right-aligned.
    """
    headers = headers or {}
    columns, numeric = {}, []
    for key in table.columns:
        column = COLUMNS.get(key, Column(key, key.replace("_", " "), _other))
        header = headers.get(key, column.header)
        columns[header] = [_cell(column, value) for value in table[key]]
        if pd.api.types.is_numeric_dtype(table[key]) and not pd.api.types.is_bool_dtype(table[key]):
            numeric.append(header)
    return pd.DataFrame(columns), numeric


def _cell(column, value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return column.missing
    return column.fmt(value)


def curve_distance(ours, lecture):
    """How far a cost curve lies from the lecture's: the mean over their common epochs of |log(ours / lecture)|."""
    return statistics.mean(abs(math.log(a / b)) for a, b in zip(ours, lecture))


def epochs_inside(curves, lecture):
    """In how many of their common epochs the lecture's cost lies within the min–max of ``curves`` (one per seed),
    as ``k/n``."""
    epochs = list(zip(*curves, lecture))
    return f"{sum(min(costs[:-1]) <= costs[-1] <= max(costs[:-1]) for costs in epochs)}/{len(epochs)}"


def summary_table(params, accuracies, costs=None):
    """One row per variant of ``params``: architecture, inits, dropout, lecture's and reproduced accuracy.

    ``accuracies`` maps variant name to its test accuracies (fractions), train.seed's first; with more than one,
    the row adds their number, mean, standard deviation, min and max, and whether the lecture's lies within two
    standard deviations of the mean. ``costs`` maps variant name to its per-epoch cost curves after each step, in
    the same order: the row adds the first one's distance from the lecture's curve and, with more than one, the
    epochs where the lecture's cost lies within their min–max.
    """
    rows = []
    for name in params.variants:
        spec = params.model_spec(name)
        lecture = params.lecture_accuracy.get(name)
        runs = accuracies[name]
        row = {
            "variant": name,
            "architecture": spec.architecture,
            "init": spec.init,
            "bias_init": spec.bias_init,
            "dropout": spec.dropout_p,
            "lecture_accuracy": lecture,
            "reproduced_accuracy": runs[0],
            "difference_pp": None if lecture is None else round(100 * (runs[0] - lecture), 2),
        }
        if len(runs) > 1:
            mean, std = statistics.mean(runs), statistics.stdev(runs)
            row |= dict(zip(SEED_STATISTICS, [len(runs), mean, std, min(runs), max(runs)]))
            row["within_noise"] = None if lecture is None else abs(lecture - mean) <= 2 * std
        lecture_cost = params.lecture_cost.get(name)
        if costs is not None and lecture_cost is not None:
            row["cost_distance"] = curve_distance(costs[name][0], lecture_cost)
            if len(costs[name]) > 1:
                row["epochs_inside"] = epochs_inside(costs[name], lecture_cost)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[sorted(table.columns, key=_POSITION.__getitem__)]  # SUMMARY's order; a KeyError if it lacks one


def summary_shown(table):
    """The summary for display: the seed statistics, when there are some, as mean ± std and min–max, in SUMMARY's
    order; columns it lacks stand where the seed statistics begin."""
    if "mean" not in table:
        return table
    shown = _with_seed_statistics_shown(table.drop(columns=SEED_STATISTICS), table)
    return shown[sorted(shown.columns, key=lambda key: _POSITION.get(key, _POSITION["seeds"]))]


def _with_seed_statistics_shown(shown, table):
    return shown.assign(
        mean_std=[f"{100 * m:.2f} ± {100 * s:.2f}%" for m, s in zip(table["mean"], table["std"])],
        min_max=[f"{percent(lo)}–{percent(hi)}" for lo, hi in zip(table["min"], table["max"])],
    )


def sweep_table(runs):
    """One row per sweep point of ``runs`` (records of ``keep_prob``, ``seeds`` and their test ``accuracies``):
    dropout p, number of seeds, mean, standard deviation (over seeds), min and max test accuracy."""
    rows = []
    for run in runs:
        accuracies = run["accuracies"]
        rows.append({
            "keep_prob": run["keep_prob"],
            "dropout": round(1 - run["keep_prob"], 6),
            "seeds": len(accuracies),
            "mean": statistics.mean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "min": min(accuracies),
            "max": max(accuracies),
            "runs": accuracies,
        })
    return pd.DataFrame(rows)


def sweep_points(runs):
    """Every single run of the sweep: a row of ``keep_prob`` and test ``accuracy`` per seed and keep_prob."""
    return pd.DataFrame(
        [{"keep_prob": run["keep_prob"], "accuracy": accuracy} for run in runs for accuracy in run["accuracies"]]
    )


def sweep_shown(table):
    """The sweep for display: keep_prob, dropout, mean ± std and min–max over the seeds, and each seed's accuracy."""
    shown = _with_seed_statistics_shown(table[["keep_prob", "dropout", "seeds"]], table)
    return shown.assign(runs=[", ".join(percent(a) for a in runs) for runs in table["runs"]])


def seed_noise_table(table):
    """Each step of the lecture's story (one variant to the next) against the noise between seeds.

    A step is the difference of mean test accuracies; it is beyond the noise when larger than two standard errors.
    """
    n = table["seeds"].iloc[0]
    rows = []
    for (_, a), (_, b) in zip(table.iterrows(), table.iloc[1:].iterrows()):
        step = b["mean"] - a["mean"]
        noise = 2 * math.sqrt((a["std"] ** 2 + b["std"] ** 2) / n)
        rows.append(
            {
                "step": f"{a['variant']} → {b['variant']}",
                "lecture_step_pp": 100 * (b["lecture_accuracy"] - a["lecture_accuracy"]),
                "mean_step_pp": 100 * step,
                "noise_pp": 100 * noise,
                "beyond_noise": abs(step) > noise,
            }
        )
    return pd.DataFrame(rows)


def optimizer_table(study, results, val_accuracy):
    """One row per optimizer of ``study``: its hyperparameters, test accuracy, final train loss, epochs to target.

    ``results`` maps name → the optimizer stage's metrics; ``val_accuracy`` maps name → per-epoch accuracies.
    """
    rows = []
    for name, opt in study.optimizers.items():
        reached = [epoch for epoch, acc in enumerate(val_accuracy[name], 1) if acc >= study.target_accuracy]
        rows.append(
            {
                "optimizer": name,
                "hyperparameters": ", ".join(f"{k}={v}" for k, v in opt.model_dump().items()),
                "test_accuracy": results[name]["test_accuracy"],
                "final_train_loss": results[name]["train_loss"],
                "epochs_to_target": reached[0] if reached else None,
            }
        )
    return pd.DataFrame(rows).astype({"epochs_to_target": "Int64"})


def optimizer_headers(study):
    """The optimizer table's header that depends on the study: epochs to its target accuracy."""
    return {"epochs_to_target": f"epochs to {100 * study.target_accuracy:g}% val"}
