"""One reader for what the stages write: JSON metrics, CSV tables and dvclive logs, each checked against a strict
model of what it holds (numbers where numbers belong, finite, names by the name pattern); a UserError names the
file, the field and the command that writes it."""

import functools
import io
import json
import stat
from pathlib import Path
from typing import Annotated

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from mnist_dnn import paths
from mnist_dnn.errors import UserError, describe
from mnist_dnn.kinds import Beta, Finite, Fraction, NonNegative, Positive
from mnist_dnn.lecture.config import Name, Seed
from mnist_dnn.results.tables import COLUMNS, SEED_STATISTICS
from mnist_dnn.stage import provenance

Digit = Annotated[int, Field(ge=0, le=9)]
Count = Annotated[int, Field(ge=1)]
Step = Annotated[int, Field(ge=0)]
MAX_BYTES = 16 * 2**20  # of one file: the largest, a confusion CSV, is ~100 KB


class _Output(BaseModel):
    """A stage's JSON output, checked before use: the types exact, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class TestMetrics(_Output):
    """What evaluate@<variant> and seed@<variant>-<seed> write (evaluate also per-class accuracy)."""

    model_config = ConfigDict(extra="ignore")
    accuracy: Fraction
    loss: NonNegative


class ProvenMetrics(TestMetrics):
    """Test metrics as check_trained_with reads them: with the provenance record that the model's file holds."""

    trained_with: dict


class SeedMetrics(TestMetrics):
    """What seed@<variant>-<seed> writes: also its cost per epoch after each step."""

    loss_after_step: list[Positive] = Field(min_length=1)


class EvalMetrics(TestMetrics):
    """What evaluate@<variant> writes: also the numerics that computed its model (models.read_numerics)."""

    numerics: dict[str, str | int | list[str]]


# The columns of metrics/summary.json, in the summary's order (tables.SUMMARY says how each reads): what each value must
# be, and whether a row may lack it.
SUMMARY_KINDS = {
    "variant": (Name, False),
    "architecture": (str, False),
    "init": (Name, False),
    "bias_init": (Name, False),
    "dropout": (Beta, False),
    "lecture_accuracy": (Fraction | None, False),
    "reproduced_accuracy": (Fraction, False),
    "difference_pp": (Finite | None, False),
    "seeds": (Annotated[int, Field(ge=2)] | None, True),
    "mean": (Fraction | None, True),
    "std": (NonNegative | None, True),
    "min": (Fraction | None, True),
    "max": (Fraction | None, True),
    "within_noise": (bool | None, True),
    "cost_distance": (NonNegative | None, True),
    "epochs_inside": (Annotated[str, Field(pattern=r"^\d+/\d+$")] | None, True),
}


def _summary_fields(keys):
    """The pydantic fields of the summary columns ``keys``."""
    return {key: (kind, None if optional else ...) for key, (kind, optional) in SUMMARY_KINDS.items() if key in keys}


class _RankedRow(_Output):
    model_config = ConfigDict(extra="ignore")


VariantAccuracy = create_model(  # what predict reads of a row of metrics/summary.json, to pick the best variant
    "VariantAccuracy", __base__=_RankedRow, **_summary_fields({"variant", "reproduced_accuracy"})
)
Ranking = Annotated[list[VariantAccuracy], Field(min_length=1)]


class _SummaryRecord(VariantAccuracy):
    """A row of metrics/summary.json (summarize): a variant's accuracies, and its seed statistics when measured.

    Columns beyond SUMMARY_KINDS are shown as they are: plain values only, and none that tables.COLUMNS formats.
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, str | int | Finite | bool | None]

    @model_validator(mode="after")
    def _all_seed_statistics_or_none(self):
        statistics = [getattr(self, key) for key in SEED_STATISTICS]
        if any(value is None for value in statistics) and any(value is not None for value in statistics):
            raise ValueError("seeds, mean, std, min and max go together: all of them or none")
        formatted = sorted(set(self.__pydantic_extra__) & set(COLUMNS))
        if formatted:
            raise ValueError(f"{formatted[0]}: not a column of the summary")
        return self


SummaryRow = create_model(
    "SummaryRow", __base__=_SummaryRecord,
    **_summary_fields(set(SUMMARY_KINDS) - set(VariantAccuracy.model_fields)),
)


def _distinct_variants(rows):
    names = [row.variant for row in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"a variant appears twice in {', '.join(names)}")
    return rows


Summary = Annotated[list[SummaryRow], Field(min_length=1), AfterValidator(_distinct_variants)]


class SweepRun(_Output):
    keep_prob: Annotated[float, Field(gt=0, le=1)]
    seeds: list[Seed] = Field(min_length=1)
    accuracies: list[Fraction] = Field(min_length=1)

    @model_validator(mode="after")
    def _an_accuracy_per_seed(self):
        if len(self.seeds) != len(self.accuracies):
            raise ValueError(f"{len(self.seeds)} seeds but {len(self.accuracies)} accuracies")
        return self


class Sweep(_Output):
    """The keep_prob sweep (`make sweep`): its variant, and per keep_prob its seeds and their test accuracies."""

    variant: Name
    runs: list[SweepRun] = Field(min_length=1)


class OptimizerResult(_Output):
    """What optimizer_study@<name> writes."""

    test_accuracy: Fraction
    train_loss: NonNegative


class OptimizerRow(_Output):
    """A row of metrics/optimizers.json (compare_optimizers)."""

    optimizer: Name
    hyperparameters: str
    test_accuracy: Fraction
    final_train_loss: NonNegative
    epochs_to_target: Count | None


@functools.cache
def _adapter(schema):
    return TypeAdapter(schema)


def parse_json(text, schema, where, command):
    """The JSON ``text`` read from ``where``, if it is what ``schema`` (a pydantic model or type) describes; else a
    UserError naming the field and ``command``, which writes it."""
    try:
        content = json.loads(text)
        _adapter(schema).validate_python(content, strict=True)
    except ValidationError as err:
        raise UserError(f"{where}: {describe(err)}; run `{command}`") from None
    except ValueError as err:
        raise UserError(f"{where}: not JSON ({err}); run `{command}`") from None
    return content


def read_text(path, command):
    """The text of the regular file ``path`` of at most MAX_BYTES, which ``command`` writes."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            raise UserError(f"{path}: not a regular file of at most {MAX_BYTES:,} bytes; run `{command}`")
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read ({err}); run `{command}`") from None


def read_json(path, schema, command):
    """The JSON at ``path``, which ``command`` writes, once ``schema`` has checked it."""
    return parse_json(read_text(path, command), schema, path, command)


def read_table(path, columns, stage, sep=","):
    """The ``columns`` (name → pydantic type of its values) of the ``sep``-separated file at ``path``, which DVC stage
    ``stage`` writes, each value checked."""
    text = read_text(path, f"dvc repro {stage}")
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep)[list(columns)]
    except (ValueError, KeyError) as err:
        raise UserError(f"{path}: cannot read ({err}); run `dvc repro {stage}`") from None
    for name, kind in columns.items():
        try:  # lax: a CSV has no types, so "3" may be the integer 3
            table[name] = _adapter(dict[str, list[kind]]).validate_python({name: table[name].tolist()})[name]
        except ValidationError as err:
            raise UserError(f"{path}: {describe(err)}; run `dvc repro {stage}`") from None
    return table


def read_curve(log_dir, metric, stage):
    """The per-epoch values of ``metric`` (e.g. ``val/accuracy``) in the dvclive log ``log_dir``, as a DataFrame of
    ``step`` and the metric's last name part (``accuracy``)."""
    name = metric.rsplit("/", 1)[-1]
    return read_table(Path(log_dir, "plots", "metrics", f"{metric}.tsv"), {"step": Step, name: Finite}, stage, sep="\t")


def read_confusion(path, stage):
    """The actual and predicted digit of each test image, as evaluate@<variant> writes them."""
    return read_table(path, {"actual": Digit, "predicted": Digit}, stage)


def read_optimizer_curves(path):
    """The validation accuracy per epoch and optimizer, as compare_optimizers writes it."""
    return read_table(path, {"epoch": Count, "val_accuracy": Fraction, "optimizer": Name}, "compare_optimizers")


def read_stage_metrics(path, stage, schema=TestMetrics):
    """The test metrics that DVC stage ``stage`` wrote to ``path``, as ``schema`` checks them."""
    return read_json(path, schema, f"dvc repro {stage}")


def tested(name, seed, folder):
    """Where the test metrics of variant ``name`` are in ``folder``, and the stage that writes them: evaluate's with
    train.seed (``seed`` None), else the seed stage's."""
    if seed is None:
        return paths.eval_file(name, folder), f"evaluate@{name}"
    return paths.seed_file(name, seed, folder), f"seed@{name}-{seed}"


def read_accuracies(variants, extra_seeds, eval_dir, seeds_dir):
    """Per variant, its test accuracies: with train.seed first (in ``eval_dir``), then with each of ``extra_seeds``."""
    return {
        name: [read_stage_metrics(*tested(name, None, eval_dir))["accuracy"],
               *(read_stage_metrics(*tested(name, s, seeds_dir))["accuracy"] for s in extra_seeds)]
        for name in variants
    }


def check_trained_with(params, eval_dir, seeds_dir=None):
    """A UserError unless each variant's test metrics in ``eval_dir`` (and each extra seed's in ``seeds_dir``) come
    from a model trained with the params of ``params``, naming the first key that differs."""
    runs = [(name, None, eval_dir) for name in params.variants]
    if seeds_dir is not None:
        runs += [(name, s, seeds_dir) for name in params.variants for s in params.extra_seeds]
    for name, seed, folder in runs:
        path, stage = tested(name, seed, folder)
        recorded = read_stage_metrics(path, stage, ProvenMetrics)["trained_with"]
        provenance.check(recorded, params.trained_with(name, seed), path, f"dvc repro --force {stage}")


def read_costs(variants, extra_seeds, train_logs, seeds_dir):
    """Per variant, its per-epoch cost curves after each step: with train.seed first (its dvclive log in
    ``train_logs``), then with each of ``extra_seeds``."""
    return {
        name: [
            read_curve(Path(train_logs, name), "train/loss_after_step", f"train@{name}")["loss_after_step"].tolist(),
            *(read_stage_metrics(*tested(name, s, seeds_dir), SeedMetrics)["loss_after_step"] for s in extra_seeds),
        ]
        for name in variants
    }


def read_test_metrics(variants, eval_dir):
    """Each variant's test accuracy and loss with train.seed, as ``{"accuracy": {variant: …}, "loss": {…}}``."""
    results = {name: read_stage_metrics(*tested(name, None, eval_dir)) for name in variants}
    return {key: {name: results[name][key] for name in variants} for key in ("accuracy", "loss")}


def read_numerics(variants, eval_dir):
    """Each variant's numerics, as its model file records them and its test metrics copy them."""
    return {name: read_stage_metrics(*tested(name, None, eval_dir), EvalMetrics)["numerics"] for name in variants}


def read_summary(path, command="dvc repro summarize"):
    """The records of the summary JSON at ``path`` (written by ``command``), one per variant."""
    return read_json(path, Summary, command)


def read_sweep(path):
    """The keep_prob sweep at ``path``: its variant, and per keep_prob its seeds and their test accuracies."""
    return read_json(path, Sweep, "make sweep")


def read_optimizers(path):
    """The optimizer study's table, as compare_optimizers writes it."""
    return read_json(path, list[OptimizerRow], "dvc repro compare_optimizers")
