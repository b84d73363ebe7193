"""The summary table: lecture's accuracy next to the reproduced one, from the metrics files."""

import json
from pathlib import Path

import pandas as pd

from mnist_dnn.errors import UserError
from mnist_dnn.models import architecture


def read_test_accuracy(metrics_dir, variants):
    """Test accuracy of each of ``variants`` from ``<metrics_dir>/<variant>.json``."""
    accuracy = {}
    for name in variants:
        path = Path(metrics_dir, f"{name}.json")
        try:
            accuracy[name] = json.loads(path.read_text())["accuracy"]
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"{path}: no test accuracy ({err}); run `dvc repro evaluate@{name}`") from None
    return accuracy


def summary_table(params, test_accuracy):
    """One row per variant of ``params``: architecture, init, dropout, lecture's and reproduced accuracy.

    ``test_accuracy`` maps variant name to its measured test accuracy (a fraction).
    """
    rows = []
    for name, variant in params.variants.items():
        lecture = params.lecture_accuracy.get(name)
        reproduced = test_accuracy[name]
        rows.append(
            {
                "variant": name,
                "architecture": architecture(variant.hidden),
                "init": variant.init,
                "dropout": params.dropout_p(name),
                "lecture_accuracy": lecture,
                "reproduced_accuracy": reproduced,
                "difference_pp": None if lecture is None else round(100 * (reproduced - lecture), 2),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table):
    """The table as Markdown, accuracies in percent, followed by the lecture's story retold."""
    shown = table.assign(
        dropout=table["dropout"].map(lambda p: f"p = {p:g}" if p else "–"),
        lecture_accuracy=table["lecture_accuracy"].map(_percent),
        reproduced_accuracy=table["reproduced_accuracy"].map(_percent),
        difference_pp=table["difference_pp"].map(lambda d: "–" if pd.isna(d) else f"{d:+.2f}"),
    ).rename(
        columns={
            "lecture_accuracy": "lecture",
            "reproduced_accuracy": "reproduced",
            "difference_pp": "difference (pp)",
        }
    )
    story = " → ".join(_percent(a) for a in table["reproduced_accuracy"])
    return (
        "# MNIST: the lecture's table, reproduced\n\n"
        + shown.to_markdown(index=False, disable_numparse=True)
        + f"\n\nReproduced, in the lecture's order: {story}.\n"
    )


def _percent(fraction):
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
        test_accuracy=table["test_accuracy"].map(_percent),
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
