"""The lecture's models: a ModelSpec builds each one, and saves and loads itself with its weights (model_file)."""

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import save_file
from torch import nn

from mnist_dnn.errors import UserError
from mnist_dnn.lecture import model_file
from mnist_dnn.stage import provenance

IN_FEATURES = 28 * 28
NUM_CLASSES = 10
NAME_PATTERN = r"[a-z][a-z0-9_]{0,63}"  # variant and optimizer names: they become file and stage names
MAX_LAYERS = 64
MAX_PARAMETERS = 50_000_000  # 200 MB of fp32 weights; training holds ~4 times that (gradients, Adam's moments)


def check_size(hidden):
    """``hidden`` if a model of those hidden widths has at most MAX_PARAMETERS weights and biases, else ValueError."""
    widths = [IN_FEATURES, *hidden, NUM_CLASSES]
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
    if parameters > MAX_PARAMETERS:
        raise ValueError(f"{parameters:,} parameters, over the {MAX_PARAMETERS:,} allowed")
    return hidden


def _normal(tensor):
    nn.init.normal_(tensor, mean=0.0, std=1.0)


INITS = {"normal": _normal, "xavier_uniform": nn.init.xavier_uniform_}  # weights
# biases: N(0, 1) as the lecture's TensorFlow labs draw them (tf.random_normal), or nn.Linear's own U(±1/√fan_in)
BIAS_INITS = {"normal": _normal, "pytorch": lambda bias: None}


class Dropout(nn.Dropout):
    """``nn.Dropout`` with its keep-mask drawn by ``torch.rand``: the same Bernoulli(1 - p) mask and 1/(1 - p) scaling.

    On CPUs where ``bernoulli_`` draws a 64-bit double per element (any x86 CPU but Intel's), this is ~3× faster.
    The masks come from ``generator``: PyTorch's default one unless ``masks_from`` sets another.
    """

    generator = None

    def forward(self, x):
        if not self.training:
            return x
        keep = 1 - self.p
        noise = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=self.generator)
        return x * noise.lt_(keep).div_(keep)  # in place: a bool mask would cost 4× more here


@contextmanager
def masks_from(model, generator):
    """Inside the block, ``model``'s dropout layers draw their masks from ``generator``."""
    layers = [layer for layer in model.modules() if isinstance(layer, Dropout)]
    for layer in layers:
        layer.generator = generator
    try:
        yield
    finally:
        for layer in layers:
            layer.generator = None


class ModelSpec(BaseModel):
    """What builds one variant's model: 784 → hidden… → 10 MLP with ReLU, ``init`` of the weights and ``bias_init``
    of the biases, dropout after each hidden layer."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    variant: str = Field(pattern=f"^{NAME_PATTERN}$")
    hidden: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(max_length=MAX_LAYERS), AfterValidator(check_size)]
    init: Literal["normal", "xavier_uniform"]
    bias_init: Literal["normal", "pytorch"]
    dropout_p: float = Field(default=0.0, ge=0, lt=1)

    @property
    def architecture(self):
        """Human-readable layer widths, e.g. ``784→256→256→10``."""
        return "→".join(str(w) for w in [IN_FEATURES, *self.hidden, NUM_CLASSES])

    @property
    def layout(self):
        """Architecture, inits and dropout in a phrase, e.g. ``784→10, normal, normal biases, dropout 0``."""
        return f"{self.architecture}, {self.init}, {self.bias_init} biases, dropout {self.dropout_p:g}"

    def build(self, initialise=True):
        """A freshly initialised model, on the CPU, drawing its weights from PyTorch's global generator; without
        ``initialise``, with nn.Linear's default init (for its shapes)."""
        widths = [IN_FEATURES, *self.hidden, NUM_CLASSES]
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
            linear = nn.Linear(fan_in, fan_out)
            if initialise:
                INITS[self.init](linear.weight)
                BIAS_INITS[self.bias_init](linear.bias)
            layers.append(linear)
            if i < len(self.hidden):
                layers.append(nn.ReLU())
                if self.dropout_p > 0:
                    layers.append(Dropout(self.dropout_p))
        return nn.Sequential(*layers)

    def shapes(self):
        """Name → shape of each tensor of the model's state, from a build on the meta device (no memory, no RNG; and
        no init: a normal init on the meta device imports torch._dynamo, 2 s)."""
        with torch.device("meta"):
            return {name: tuple(t.shape) for name, t in self.build(initialise=False).state_dict().items()}

    def save(self, model, path, numerics=None, trained_with=None):
        """Write ``model``'s weights to ``path`` as safetensors, with this spec, the ``numerics`` that computed them
        (a dict, see numerics.recorded) and what it was ``trained_with`` (provenance.record; None outside the stages)
        as metadata."""
        state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
        record = {"spec": self.model_dump(mode="json"), "numerics": numerics or {},
                  "sha256": model_file.tensor_digest(state), "trained_with": trained_with}
        save_file(state, path, metadata={model_file.METADATA_KEY: json.dumps(record, sort_keys=True)})

    @classmethod
    def load(cls, path):
        """The model saved at ``path`` and its spec; never unpickles (see load_with_record)."""
        model, spec, _ = cls.load_with_record(path)
        return model, spec

    @classmethod
    def load_with_record(cls, path):
        """The model saved at ``path``, its spec and its metadata record (model_file.metadata_record); never unpickles.

        The file's size, its header's length, its metadata and the tensor shapes and dtypes in its header are
        checked against each other before any weight is read; the weights must match their digest and be finite.
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such model file (train it with `dvc repro`, or fetch it with `dvc pull`)")
        size = path.stat().st_size
        if size > 4 * MAX_PARAMETERS + 2**20:
            raise UserError(f"{path}: {size:,} bytes, larger than any model file can be")
        with model_file.opened(path, framework="pt") as f:
            record = model_file.metadata_record(f.metadata() or {})
            spec = cls._from_record(record)
            slices = {name: f.get_slice(name) for name in f.keys()}
            found = {name: (s.get_dtype(), tuple(s.get_shape())) for name, s in slices.items()}
            expected = {name: ("F32", shape) for name, shape in spec.shapes().items()}
            if found != expected:
                difference = _difference(found, expected)
                raise UserError(f"weights do not match the architecture in its metadata ({difference})")
            state = {name: f.get_tensor(name) for name in f.keys()}
            model_file.check_digest(state, record)
        for name, tensor in state.items():
            if not torch.isfinite(tensor).all():
                raise UserError(f"{path}: weights are not finite (NaN or infinity in {name})")
        model = spec.build()
        model.load_state_dict(state, strict=True)
        return model, spec, record

    @classmethod
    def _from_record(cls, record):
        """The spec in a model file's record; a UserError saying what is wrong with it."""
        try:
            return cls.model_validate_json(json.dumps(record["spec"]))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "spec"
            message = first["msg"].removeprefix("Value error, ")
            raise UserError(f"not a mnist_dnn model file (metadata {where}: {message})") from None


def load_as(path, spec, trained_with):
    """The model at ``path`` and its record, if it holds ``spec`` trained as ``trained_with`` (provenance.record)
    says; else a UserError naming the first difference and the stage that retrains it."""
    model, found, record = ModelSpec.load_with_record(path)
    retrain = f"dvc repro --force train@{spec.variant}"
    if found != spec:
        raise UserError(f"{path}: holds {found.variant} ({found.layout}), not {spec.variant} as params.yaml has it "
                        f"({spec.layout}); run `{retrain}`")
    provenance.check(record["trained_with"], trained_with, path, retrain)
    return model, record


def _difference(found, expected):
    """The first tensor whose dtype and shape differ between ``found`` and ``expected`` (name → (dtype, shape))."""
    for name in sorted(found.keys() | expected.keys()):
        if found.get(name) != expected.get(name):
            got = "missing" if name not in found else f"{found[name][0]} {list(found[name][1])}"
            want = "none" if name not in expected else f"{expected[name][0]} {list(expected[name][1])}"
            return f"{name[:80]!r}: {got[:80]}, expected {want}"
