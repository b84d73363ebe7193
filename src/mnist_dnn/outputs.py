"""One reader for what the stages write: JSON metrics, CSV tables and dvclive logs; a UserError names the stage."""

import json
from pathlib import Path

import pandas as pd

from mnist_dnn.errors import UserError


def read_json(path, stage, key=None):
    """The JSON at ``path`` (its ``key`` when given), which DVC stage ``stage`` writes."""
    return _read_json(path, f"dvc repro {stage}", key)


def _read_json(path, command, key=None):
    """The JSON at ``path`` (its ``key`` when given), which ``command`` writes."""
    try:
        content = json.loads(Path(path).read_text())
        return content if key is None else content[key]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: cannot read{f' {key}' if key else ''} ({err}); run `{command}`") from None


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


def read_costs(variants, extra_seeds, train_logs, seeds_dir):
    """Per variant, its per-epoch cost curves after each step: with train.seed first (its dvclive log in
    ``train_logs``), then with each of ``extra_seeds``."""
    return {
        name: [
            read_curve(Path(train_logs, name), "train/loss_after_step", f"train@{name}")["loss_after_step"].tolist(),
            *(read_json(Path(seeds_dir, f"{name}-{s}.json"), f"seed@{name}-{s}", "loss_after_step") for s in extra_seeds),
        ]
        for name in variants
    }


def read_test_metrics(variants, eval_dir):
    """Each variant's test accuracy and loss with train.seed, as ``{"accuracy": {variant: …}, "loss": {…}}``."""
    results = {name: read_json(Path(eval_dir, f"{name}.json"), f"evaluate@{name}") for name in variants}
    try:
        return {key: {name: results[name][key] for name in variants} for key in ("accuracy", "loss")}
    except KeyError as err:
        raise UserError(f"{eval_dir}: a test metrics file lacks {err}; run `dvc repro evaluate`") from None


def read_numerics(variants, eval_dir):
    """Each variant's numerics, as its model file records them and its test metrics copy them."""
    return {name: read_json(Path(eval_dir, f"{name}.json"), f"evaluate@{name}", "numerics") for name in variants}


def read_summary(path, command="dvc repro summarize"):
    """The records of the summary JSON at ``path`` (written by ``command``), one per variant with a ``variant`` key."""
    rows = _read_json(path, command)
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "variant" in row for row in rows):
        raise UserError(f"{path}: not a summary (a list of records with a variant each); run `{command}`")
    return rows


def read_sweep(path):
    """The keep_prob sweep at ``path``: its variant, and per keep_prob its seeds and their test accuracies."""
    sweep = _read_json(path, "make sweep")
    runs = sweep.get("runs") if isinstance(sweep, dict) else None
    keys = {"keep_prob", "seeds", "accuracies"}
    if "variant" not in sweep or not runs or not all(isinstance(r, dict) and keys <= set(r) for r in runs):
        raise UserError(f"{path}: not a sweep (a variant and runs of {', '.join(sorted(keys))}); run `make sweep`")
    return sweep
