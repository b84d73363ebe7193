"""Tables from the metrics files: the lecture's accuracy next to the reproduced one, and the optimizer study."""

import json
import math
import statistics
from pathlib import Path

import pandas as pd

from mnist_dnn.errors import UserError
from mnist_dnn.models import architecture


def read_accuracy(path, stage):
    """The test accuracy in the metrics file ``path``, which DVC stage ``stage`` writes."""
    try:
        return json.loads(Path(path).read_text())["accuracy"]
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: no test accuracy ({err}); run `dvc repro {stage}`") from None


def read_table(path, columns, stage, sep=","):
    """The ``columns`` of the ``sep``-separated file at ``path``; a UserError naming ``stage`` if it cannot."""
    try:
        return pd.read_csv(path, sep=sep)[columns]
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: cannot read ({err}); run `dvc repro {stage}`") from None


def read_accuracies(params, eval_dir, seeds_dir):
    """Per variant, its test accuracies: with train.seed first, then with each of extra_seeds."""
    return {
        name: [
            read_accuracy(Path(eval_dir, f"{name}.json"), f"evaluate@{name}"),
            *(read_accuracy(Path(seeds_dir, f"{name}-{s}.json"), f"seed@{name}-{s}") for s in params.extra_seeds),
        ]
        for name in params.variants
    }


def summary_table(params, accuracies):
    """One row per variant of ``params``: architecture, init, dropout, lecture's and reproduced accuracy.

    ``accuracies`` maps variant name to its test accuracies (fractions), train.seed's first; with more than one,
    the row adds their number, mean, standard deviation, min and max.
    """
    rows = []
    for name, variant in params.variants.items():
        lecture = params.lecture_accuracy.get(name)
        runs = accuracies[name]
        row = {
            "variant": name,
            "architecture": architecture(variant.hidden),
            "init": variant.init,
            "dropout": params.dropout_p(name),
            "lecture_accuracy": lecture,
            "reproduced_accuracy": runs[0],
            "difference_pp": None if lecture is None else round(100 * (runs[0] - lecture), 2),
        }
        if len(runs) > 1:
            row |= {
                "seeds": len(runs),
                "mean": statistics.mean(runs),
                "std": statistics.stdev(runs),
                "min": min(runs),
                "max": max(runs),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table):
    """The table as Markdown, accuracies in percent, the lecture's story retold, and the seed noise if measured."""
    shown = table.assign(
        dropout=table["dropout"].map(dropout_text),
        lecture_accuracy=table["lecture_accuracy"].map(percent),
        reproduced_accuracy=table["reproduced_accuracy"].map(percent),
        difference_pp=table["difference_pp"].map(difference_text),
    ).rename(
        columns={
            "lecture_accuracy": "lecture",
            "reproduced_accuracy": "reproduced",
            "difference_pp": "difference (pp)",
        }
    )
    seeded = "mean" in table
    if seeded:
        shown = shown.drop(columns=["seeds", "mean", "std", "min", "max"]).assign(
            **{
                "mean ± std": [f"{100 * m:.2f} ± {100 * s:.2f}%" for m, s in zip(table["mean"], table["std"])],
                "min–max": [f"{percent(lo)}–{percent(hi)}" for lo, hi in zip(table["min"], table["max"])],
            }
        )
    story = " → ".join(percent(a) for a in table["reproduced_accuracy"])
    text = (
        "# MNIST: the lecture's table, reproduced\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + f"\n\nReproduced, in the lecture's order: {story}.\n"
    )
    return text + seed_noise_markdown(table) if seeded else text


def seed_noise_markdown(table):
    """Each step of the lecture's story (one variant to the next) against the noise between seeds."""
    n = table["seeds"].iloc[0]
    rows = []
    for (_, a), (_, b) in zip(table.iterrows(), table.iloc[1:].iterrows()):
        step = b["mean"] - a["mean"]
        noise = 2 * math.sqrt((a["std"] ** 2 + b["std"] ** 2) / n)  # two standard errors of the difference
        lecture = b["lecture_accuracy"] - a["lecture_accuracy"]
        rows.append(
            {
                "step": f"{a['variant']} → {b['variant']}",
                "lecture (pp)": "–" if pd.isna(lecture) else f"{100 * lecture:+.2f}",
                "reproduced, mean (pp)": f"{100 * step:+.2f}",
                "seed noise, 2 SE (pp)": f"{100 * noise:.2f}",
                "beyond the noise": "yes" if abs(step) > noise else "no",
            }
        )
    return (
        f"\n## Seed noise ({n} seeds per variant)\n\n"
        "Each step of the lecture's story, reproduced as the difference of mean test accuracies over the seeds; "
        "it is beyond the noise when larger than two standard errors of that difference.\n\n"
        + pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
        + "\n"
    )


def dropout_text(p):
    """A dropout probability as ``p = 0.3``; – for none."""
    return f"p = {p:g}" if p else "–"


def difference_text(pp):
    """A difference in percentage points with its sign; – for none."""
    return "–" if pp is None or pd.isna(pp) else f"{pp:+.2f}"


def percent(fraction):
    """A fraction as a percentage with two decimals; – for none."""
    return "–" if fraction is None or pd.isna(fraction) else f"{100 * fraction:.2f}%"


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
                "seconds": results[name]["seconds"],
            }
        )
    return pd.DataFrame(rows).astype({"epochs_to_target": "Int64"})


def optimizer_markdown(table, study):
    """The optimizer comparison as Markdown."""
    target = f"{100 * study.target_accuracy:g}%"
    shown = table.assign(
        test_accuracy=table["test_accuracy"].map(percent),
        final_train_loss=table["final_train_loss"].map(lambda loss: f"{loss:.4f}"),
        epochs_to_target=table["epochs_to_target"].map(lambda e: "never" if pd.isna(e) else str(int(e))),
        seconds=table["seconds"].map(lambda s: f"{s:.0f}"),
    ).rename(
        columns={
            "test_accuracy": "test accuracy",
            "final_train_loss": "final train loss",
            "epochs_to_target": f"epochs to {target} val",
        }
    )
    return (
        f"# The lecture's optimizers on {study.variant}\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + "\n"
    )
