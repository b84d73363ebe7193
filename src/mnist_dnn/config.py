"""params.yaml: load it the way DVC does (YAML 1.2) and validate it before a stage does any work."""

from pathlib import Path
from typing import Annotated

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML, YAMLError

from mnist_dnn.errors import UserError
from mnist_dnn.models import INITS, ModelSpec
from mnist_dnn.optimizers import OPTIMIZERS, build_optimizer


def _one_of(names, what):
    """A validator that accepts only the keys of ``names``."""

    def check(name):
        if name not in names:
            raise ValueError(f"unknown {what} '{name}' (known: {', '.join(names)})")
        return name

    return AfterValidator(check)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(_Strict):
    val_size: int = Field(ge=1, le=50_000)
    split_seed: int = Field(ge=0)


class TrainParams(_Strict):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seed: int = Field(ge=0)
    tf32: bool = False


class OptimizerParams(_Strict):
    """An optimizer by name, its learning rate, and any other keyword hyperparameters of its class."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, _one_of(OPTIMIZERS, "optimizer")]
    lr: float = Field(gt=0)

    @property
    def hyperparameters(self):
        return dict(self.model_extra)

    @model_validator(mode="after")
    def _accepted_by_the_optimizer(self):
        try:
            build_optimizer(self.name, [torch.zeros(1, requires_grad=True)], self.lr, **self.hyperparameters)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{self.name}: {err}") from None
        return self


class VariantParams(_Strict):
    hidden: list[Annotated[int, Field(ge=1)]] = Field(description="hidden layer widths; [] is softmax regression")
    init: Annotated[str, _one_of(INITS, "init")]
    dropout: bool = False


class OptimizerStudy(_Strict):
    """One variant trained with each of several optimizers, for the optimizer comparison."""

    variant: str
    target_accuracy: float = Field(gt=0, le=1)
    optimizers: dict[str, OptimizerParams] = Field(min_length=1)

    def optimizer(self, name):
        """The optimizer params called ``name``; a UserError if the study has none of that name."""
        if name not in self.optimizers:
            raise UserError(f"unknown optimizer_study entry '{name}' (known: {', '.join(self.optimizers)})")
        return self.optimizers[name]


class Params(_Strict):
    data: DataParams
    train: TrainParams
    optimizer: OptimizerParams
    extra_seeds: list[int] = Field(description="seeds besides train.seed, to measure seed noise")
    keep_prob: float = Field(gt=0, le=1)
    variants: dict[str, VariantParams] = Field(min_length=1)
    lecture_accuracy: dict[str, float]
    optimizer_study: OptimizerStudy

    @field_validator("extra_seeds")
    @classmethod
    def _distinct_non_negative(cls, seeds, info):
        if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct and >= 0, got {seeds}")
        train = info.data.get("train")
        if train is not None and train.seed in seeds:
            raise ValueError(f"{train.seed} is train.seed already")
        return seeds

    @field_validator("lecture_accuracy")
    @classmethod
    def _of_known_variants(cls, accuracy, info):
        unknown = set(accuracy) - set(info.data.get("variants", {}))
        if unknown:
            raise ValueError(f"not a variant: {', '.join(sorted(unknown))}")
        return accuracy

    @field_validator("optimizer_study")
    @classmethod
    def _of_a_variant_without_dropout(cls, study, info):
        variant = info.data.get("variants", {}).get(study.variant)
        if variant is None:
            raise ValueError(f"variant: not a variant: {study.variant}")
        if variant.dropout:
            raise ValueError(f"variant: {study.variant} uses dropout; its stages do not track keep_prob")
        return study

    def variant(self, name):
        """The params of variant ``name``; a UserError if params.yaml has no such variant."""
        if name not in self.variants:
            raise UserError(f"unknown variant '{name}' (params.yaml variants: {', '.join(self.variants)})")
        return self.variants[name]

    def model_spec(self, name):
        """The ModelSpec of variant ``name``: its hidden widths and init, and dropout p = 1 - keep_prob if it uses it."""
        variant = self.variant(name)
        dropout_p = 1.0 - self.keep_prob if variant.dropout else 0.0
        return ModelSpec(variant=name, hidden=tuple(variant.hidden), init=variant.init, dropout_p=dropout_p)


def load_params(path="params.yaml"):
    """Read and validate ``path``; any problem is a one-line UserError naming the key."""
    path = Path(path)
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text())
    except (OSError, YAMLError) as err:
        raise UserError(f"{path}: cannot read: {' '.join(str(err).split())}") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        got = "" if first["type"] in ("missing", "value_error") else f" (got {first['input']!r})"
        raise UserError(f"{path}: {key}: {message}{got}") from None
