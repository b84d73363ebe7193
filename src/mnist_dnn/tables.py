"""The result tables (pandas), and how each column reads: one definition for the Markdown and the HTML output."""

import math
import statistics

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


# column key → (header, format of a value); a None value shows as –. Keys not listed show as they are.
COLUMNS = {
    "variant": ("variant", str),
    "architecture": ("architecture", str),
    "init": ("init", str),
    "bias_init": ("biases", str),
    "dropout": ("dropout", dropout_text),
    "lecture_accuracy": ("lecture", percent),
    "reproduced_accuracy": ("reproduced", percent),
    "difference_pp": ("difference (pp)", signed_pp),
    "mean_std": ("mean ± std", str),
    "min_max": ("min–max", str),
    "within_noise": ("lecture within 2σ", lambda within: "yes" if within else "no"),
    "cost_distance": ("cost vs lecture", lambda d: f"{d:.3f}"),
    "epochs_inside": ("lecture's cost inside seeds", str),
    "step": ("step", str),
    "lecture_step_pp": ("lecture (pp)", signed_pp),
    "mean_step_pp": ("reproduced, mean (pp)", signed_pp),
    "noise_pp": ("seed noise, 2 SE (pp)", lambda pp: f"{pp:.2f}"),
    "beyond_noise": ("beyond the noise", lambda beyond: "yes" if beyond else "no"),
    "optimizer": ("optimizer", str),
    "hyperparameters": ("hyperparameters", str),
    "test_accuracy": ("test accuracy", percent),
    "final_train_loss": ("final train loss", lambda loss: f"{loss:.4f}"),
    "epochs_to_target": ("epochs to target", lambda epoch: str(int(epoch))),
    "keep_prob": ("keep_prob", lambda p: f"{p:g}"),
    "seeds": ("seeds", str),
    "runs": ("each seed", str),
}
SEED_STATISTICS = ["seeds", "mean", "std", "min", "max"]


def shown(table, headers=None):
    """``table`` as text for display: each value formatted, columns renamed to their headers (``headers`` overrides).

    Also returns the headers of the columns that hold numbers, which read best right-aligned.
    """
    headers = headers or {}
    columns, numeric = {}, []
    for key in table.columns:
        header, fmt = COLUMNS.get(key, (key.replace("_", " "), _other))
        header = headers.get(key, header)
        columns[header] = [_cell(fmt, key, value) for value in table[key]]
        if pd.api.types.is_numeric_dtype(table[key]) and not pd.api.types.is_bool_dtype(table[key]):
            numeric.append(header)
    return pd.DataFrame(columns), numeric


def _cell(fmt, key, value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "never" if key == "epochs_to_target" else "–"
    return fmt(value)


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
    return pd.DataFrame(rows)


def summary_shown(table):
    """The summary for display: the seed statistics, when there are some, as mean ± std and min–max."""
    if "mean" not in table:
        return table
    later = [column for column in ("within_noise", "cost_distance", "epochs_inside") if column in table]
    shown = _with_seed_statistics_shown(table.drop(columns=SEED_STATISTICS + later), table)
    return shown.join(table[later])


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
