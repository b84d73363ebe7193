"""One reader for what the stages write: JSON metrics, CSV tables and dvclive logs; a UserError names the stage."""

import json
from pathlib import Path

import pandas as pd

from mnist_dnn.errors import UserError


def read_json(path, stage, key=None):
    """The JSON at ``path`` (its ``key`` when given), which DVC stage ``stage`` writes."""
    try:
        content = json.loads(Path(path).read_text())
        return content if key is None else content[key]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: cannot read{f' {key}' if key else ''} ({err}); run `dvc repro {stage}`") from None


def read_table(path, columns, stage, sep=","):
    """The ``columns`` of the ``sep``-separated file at ``path``, which DVC stage ``stage`` writes."""
    try:
        return pd.read_csv(path, sep=sep)[columns]
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: cannot read ({err}); run `dvc repro {stage}`") from None


def read_curve(log_dir, metric, stage):
    """The per-epoch values of ``metric`` (e.g. ``val/accuracy``) in the dvclive log ``log_dir``, as a DataFrame of
    ``step`` and the metric's last name part (``accuracy``)."""
    name = metric.rsplit("/", 1)[-1]
    return read_table(Path(log_dir, "plots", "metrics", f"{metric}.tsv"), ["step", name], stage, sep="\t")


def read_accuracies(variants, extra_seeds, eval_dir, seeds_dir):
    """Per variant, its test accuracies: with train.seed first (in ``eval_dir``), then with each of ``extra_seeds``."""
    return {
        name: [
            read_json(Path(eval_dir, f"{name}.json"), f"evaluate@{name}", "accuracy"),
            *(read_json(Path(seeds_dir, f"{name}-{s}.json"), f"seed@{name}-{s}", "accuracy") for s in extra_seeds),
        ]
        for name in variants
    }


def read_summary(path):
    """The records of the summary JSON at ``path``, one per variant, each with a ``variant`` key."""
    rows = read_json(path, "summarize")
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "variant" in row for row in rows):
        raise UserError(f"{path}: not a summary (a list of records with a variant each); run `dvc repro summarize`")
    return rows
