"""params.yaml: load it the way DVC does (YAML 1.2) and validate it before a stage does any work."""

import re
import stat
from pathlib import Path
from typing import Annotated

import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from mnist_dnn.errors import QUOTE_LIMIT, UserError, describe, quote, shorten
from mnist_dnn.kinds import Fraction, Positive
from mnist_dnn.lecture.models import BIAS_INITS, INITS, MAX_LAYERS, NAME_PATTERN, ModelSpec, check_size
from mnist_dnn.lecture.optimizers import HYPERPARAMETERS, OPTIMIZERS, build_optimizer
from mnist_dnn.stage import provenance
from mnist_dnn.stage.yaml_file import read_yaml

MAX_PARAMS_BYTES = 2**20  # params.yaml is ~3 KB
NAME = re.compile(NAME_PATTERN)
MAX_WIDTH = 65_536  # units in one hidden layer
IMPLEMENTATION_SWITCHES = ("foreach", "fused", "capturable", "differentiable")  # how PyTorch runs a step

def _one_of(names, what):
    """A validator that accepts only the keys of ``names``."""

    def check(name):
        if name not in names:
            raise ValueError(f"unknown {what} {quote(name)} (known: {', '.join(names)})")
        return name

    return AfterValidator(check)


def _check_name(name):
    if not NAME.fullmatch(name):
        raise ValueError(f"{quote(name)} is not a name: up to 64 lowercase letters, digits and _, a letter first")
    return name


Name = Annotated[str, AfterValidator(_check_name)]
Seed = Annotated[int, Field(ge=0, lt=2**64)]  # what torch.manual_seed accepts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


_HYPERPARAMETER_MODELS = {  # each optimizers.HYPERPARAMETERS table as a model: each key optional, no other allowed
    name: create_model(f"{name}_hyperparameters", __base__=_Strict,
                       **{key: (kind, None) for key, kind in kinds.items()})
    for name, kinds in HYPERPARAMETERS.items()
}


class DataParams(_Strict):
    val_size: int = Field(ge=1, le=50_000)
    split_seed: Seed
    limit: int | None = Field(default=None, ge=2, le=60_000)

    @model_validator(mode="after")
    def _training_images_left(self):
        if self.limit is not None and self.val_size >= self.limit:
            raise ValueError(f"val_size: {self.val_size} leaves no training image of the first {self.limit} (limit)")
        return self


class TrainParams(_Strict):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    seed: Seed
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
    def _accepted_by_the_optimizer(self, info: ValidationInfo):
        switches = [key for key in self.hyperparameters if key in IMPLEMENTATION_SWITCHES]
        if switches:
            what = "chooses how PyTorch runs the step, not what it computes; the engine sets it"
            raise ValueError(f"{switches[0]}: {what}")
        try:
            _HYPERPARAMETER_MODELS[self.name].model_validate(self.hyperparameters)
        except ValidationError as err:
            raise ValueError(f"{self.name}: {describe(err)}") from None
        if not (info.context or {}).get("training", True):
            return self  # building one imports torch._dynamo (2 s); a stage that trains builds them all
        try:
            build_optimizer(self.name, [torch.zeros(1, requires_grad=True)], self.lr, **self.hyperparameters)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{self.name}: {shorten(err, 2 * QUOTE_LIMIT)}") from None
        return self


class VariantParams(_Strict):
    hidden: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]], Field(max_length=MAX_LAYERS), AfterValidator(check_size)
    ] = Field(description="hidden layer widths; [] is softmax regression")
    init: Annotated[str, _one_of(INITS, "init")]
    bias_init: Annotated[str, _one_of(BIAS_INITS, "bias_init")]
    dropout: bool = False


class OptimizerStudy(_Strict):
    """One variant trained with each of several optimizers, for the optimizer comparison."""

    variant: Name
    target_accuracy: float = Field(gt=0, le=1)
    optimizers: dict[Name, OptimizerParams] = Field(min_length=1)

    def optimizer(self, name):
        """The optimizer params called ``name``; a UserError if the study has none of that name."""
        if name not in self.optimizers:
            raise UserError(f"unknown optimizer_study entry '{name}' (known: {', '.join(self.optimizers)})")
        return self.optimizers[name]


class Params(_Strict):
    data: DataParams
    train: TrainParams
    optimizer: OptimizerParams
    extra_seeds: list[Seed] = Field(description="seeds besides train.seed, to measure seed noise")
    keep_prob: float = Field(gt=0, le=1)
    variants: dict[Name, VariantParams] = Field(min_length=1)
    lecture_accuracy: dict[str, Fraction]
    lecture_cost: dict[str, Annotated[list[Positive], Field(min_length=1)]]
    optimizer_study: OptimizerStudy

    @field_validator("keep_prob")
    @classmethod
    def _dropout_below_one(cls, keep_prob):
        if 1.0 - keep_prob == 1.0:  # so small that dropout p = 1 - keep_prob rounds to 1: every unit dropped
            raise ValueError(f"Input should be greater than 0 (got {keep_prob!r}, and 1 - keep_prob rounds to 1)")
        return keep_prob

    @field_validator("extra_seeds")
    @classmethod
    def _distinct(cls, seeds, info):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {quote(seeds)}")
        train = info.data.get("train")
        if train is not None and train.seed in seeds:
            raise ValueError(f"{train.seed} is train.seed already")
        return seeds

    @field_validator("lecture_accuracy", "lecture_cost")
    @classmethod
    def _of_known_variants(cls, by_variant, info):
        unknown = set(by_variant) - set(info.data.get("variants", {}))
        if unknown:
            raise ValueError(f"not a variant: {shorten(', '.join(sorted(unknown)))}")
        return by_variant

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

    def trained_with(self, name, seed=None):
        """The provenance record of variant ``name`` trained with ``seed`` (train.seed if None): the params its stage
        reads, by the names dvc.yaml gives them: train, optimizer, variants.<name>, and keep_prob with dropout."""
        variant = self.variant(name)
        params = {
            "train": self.train.model_dump(mode="json", exclude_unset=True),
            "optimizer": self.optimizer.model_dump(mode="json", exclude_unset=True),
            f"variants.{name}": variant.model_dump(mode="json", exclude_unset=True),
        }
        if variant.dropout:
            params["keep_prob"] = self.keep_prob
        return provenance.record(params, self.train.seed if seed is None else seed)

    def model_spec(self, name):
        """The ModelSpec of variant ``name``: hidden widths, inits, and dropout p = 1 - keep_prob with dropout."""
        variant = self.variant(name)
        dropout_p = 1.0 - self.keep_prob if variant.dropout else 0.0
        return ModelSpec(variant=name, hidden=tuple(variant.hidden), init=variant.init, bias_init=variant.bias_init,
                         dropout_p=dropout_p)


def load_params(path="params.yaml", training=True):
    """Read and validate ``path``; any problem is a one-line UserError naming the key and quoting ~80 characters.
    With ``training`` PyTorch also builds each optimizer, to judge its hyperparameters as training will."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device could block, or never end
            raise UserError(f"{path}: not a regular file")
        if info.st_size > MAX_PARAMS_BYTES:
            raise UserError(f"{path}: {info.st_size:,} bytes, over the {MAX_PARAMS_BYTES:,} allowed")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read: {shorten(err, 2 * QUOTE_LIMIT)}") from None
    return parse_params(text, path, training)


def parse_params(text, where, training=True):
    """The params of the YAML ``text`` read from ``where``, validated as load_params does."""
    raw = read_yaml(text, where)
    try:
        return Params.model_validate(raw, context={"training": training})
    except ValidationError as err:
        raise UserError(f"{where}: {describe(err)}") from None
