import json
import math
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from mnist_dnn.errors import UserError
from mnist_dnn.lecture import model_file, models
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.model_file import METADATA_KEY, read_record, tensor_digest
from mnist_dnn.lecture.models import Dropout, ModelSpec

PARAMS = load_params(Path(__file__).parents[1] / "params.yaml")


def build_model(hidden, init, dropout_p=0.0):
    bias_init = "normal" if init == "normal" else "pytorch"  # as the lecture's labs drew them
    return ModelSpec(variant="v", hidden=tuple(hidden), init=init, bias_init=bias_init, dropout_p=dropout_p).build()


def linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("name", list(PARAMS.variants))
def test_variant_shapes_and_parameter_count(name):
    variant = PARAMS.variant(name)
    model = PARAMS.model_spec(name).build()
    assert model(torch.rand(3, 784)).shape == (3, 10)
    widths = [784, *variant.hidden, 10]
    expected = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(widths, widths[1:]))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert [(m.in_features, m.out_features) for m in linears(model)] == list(zip(widths, widths[1:]))


def test_parameter_count_of_nn_xavier_matches_lecture():
    model = build_model([256, 256], "xavier_uniform")
    assert sum(p.numel() for p in model.parameters()) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10 == 269_322


def test_softmax_variant_is_a_single_linear_layer():
    model = build_model([], "normal")
    assert len(model) == 1
    assert isinstance(model[0], nn.Linear)


def test_hidden_layers_use_relu():
    model = build_model([4], "normal")
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear]


def test_normal_init_is_standard_normal():
    torch.manual_seed(0)
    layer = linears(build_model([4096], "normal"))[0]  # 784 × 4096 weights, 4096 biases
    w, b = layer.weight.detach(), layer.bias.detach()
    assert w.mean().item() == pytest.approx(0, abs=0.005)
    assert w.std().item() == pytest.approx(1, abs=0.005)
    assert b.mean().item() == pytest.approx(0, abs=0.08)
    assert b.std().item() == pytest.approx(1, abs=0.05)


def test_xavier_uniform_init_is_bounded_uniform():
    torch.manual_seed(0)
    layer = linears(build_model([2048], "xavier_uniform"))[0]
    w = layer.weight.detach()
    bound = math.sqrt(6 / (784 + 2048))
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    assert w.mean().item() == pytest.approx(0, abs=0.01 * bound)
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert w.std().item() < 0.1  # clearly not N(0, 1)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout_layers_follow_each_hidden_layer(p):
    model = build_model([8, 8, 8], "xavier_uniform", dropout_p=p)
    dropouts = [m for m in model if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3
    assert all(d.p == p for d in dropouts)
    assert [type(m) for m in model[:3]] == [nn.Linear, nn.ReLU, Dropout]
    assert isinstance(model[-1], nn.Linear)


def test_no_dropout_module_when_p_is_zero():
    model = build_model([8, 8], "xavier_uniform", dropout_p=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_dropout_is_random_in_train_mode():
    torch.manual_seed(0)
    p = 0.3
    model = build_model([512], "normal", dropout_p=p).train()
    seen = []
    model[2].register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    x = torch.rand(16, 784)
    assert not torch.equal(model(x), model(x))
    before, after = seen[0]
    alive = before != 0
    dropped = (after[alive] == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.03)
    kept = alive & (after != 0)
    torch.testing.assert_close(after[kept], before[kept] / (1 - p))


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout_matches_torch_dropout_in_distribution_and_gradient(p):
    torch.manual_seed(0)
    x = torch.ones(1000, 1000, requires_grad=True)
    out = Dropout(p).train()(x)
    reference = nn.Dropout(p).train()(torch.ones(1000, 1000))
    for y in (out, reference):
        assert y.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
        assert (y == 0).float().mean().item() == pytest.approx(p, abs=0.002)  # 1e6 draws: σ ≈ 0.0005
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # gradient flows through kept units only, scaled by 1/(1 - p)


def test_eval_mode_equals_model_without_dropout():
    torch.manual_seed(0)
    dropped = build_model([64, 64], "xavier_uniform", dropout_p=0.5)
    plain = build_model([64, 64], "xavier_uniform", dropout_p=0.0)
    for src, dst in zip(linears(dropped), linears(plain)):
        dst.load_state_dict(src.state_dict())
    x = torch.rand(32, 784)
    dropped.eval()
    out = dropped(x)
    assert torch.equal(out, dropped(x))
    torch.testing.assert_close(out, plain(x))


@pytest.mark.parametrize("hidden, init, dropout_p", [((), "normal", 0.0), ((16, 8), "xavier_uniform", 0.3)])
def test_save_load_round_trip(tmp_path, hidden, init, dropout_p):
    spec = ModelSpec(variant="v", hidden=hidden, init=init, bias_init="pytorch", dropout_p=dropout_p)
    model = spec.build()
    path = tmp_path / "model.safetensors"
    spec.save(model, path)
    loaded, loaded_spec = ModelSpec.load(path)
    assert loaded_spec == spec
    expected = model.state_dict()
    state = loaded.state_dict()
    assert state.keys() == expected.keys()
    for name in expected:
        assert torch.equal(state[name], expected[name])
    assert [(type(a), getattr(a, "p", None)) for a in loaded] == [(type(b), getattr(b, "p", None)) for b in model]
    assert list(tmp_path.iterdir()) == [path]


def test_a_model_file_records_its_numerics_in_one_metadata_key(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "model.safetensors"
    SMALL.save(SMALL.build(), path, {"device": "cpu", "mode": "portable"})
    with safe_open(path, framework="pt") as f:
        assert list(f.metadata()) == [METADATA_KEY]  # safetensors writes several keys in a random order
    assert read_record(path)["numerics"] == {"device": "cpu", "mode": "portable"}


@pytest.mark.parametrize("record", ['{"spec": {}}', '[1]', '{"numerics": {}}', '{"spec": 1, "numerics": {}}', "{",
                                    '{"spec": {}, "numerics": {}, "trained_with": null}'])  # the last: no sha256
def test_a_malformed_record_is_refused_in_one_line(tmp_path, record):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in SMALL.build().state_dict().items()}, path, metadata={METADATA_KEY: record})
    with pytest.raises(UserError, match=r"not a mnist_dnn model file") as info:
        ModelSpec.load(path)
    assert "\n" not in str(info.value)


def test_spec_architecture_reads_as_layer_widths():
    assert ModelSpec(variant="v", hidden=(256, 256), init="normal", bias_init="normal").architecture == "784→256→256→10"
    assert ModelSpec(variant="v", hidden=(), init="normal", bias_init="normal").architecture == "784→10"


def test_load_rejects_weights_not_matching_spec(tmp_path):
    path = tmp_path / "model.safetensors"
    ModelSpec(variant="v", hidden=(16,), init="normal", bias_init="normal").save(build_model([8], "normal"), path)
    with pytest.raises(UserError) as info:
        ModelSpec.load(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def write_random_bytes(path):
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
    path.write_bytes(noise.byte().numpy().tobytes())


def write_torch_pickle(path):
    torch.save(build_model([8], "normal").state_dict(), path)


def write_without_spec(path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in build_model([8], "normal").state_dict().items()}, path)


@pytest.mark.parametrize("write", [write_random_bytes, write_torch_pickle, write_without_spec])
def test_load_rejects_non_model_file(tmp_path, write):
    path = tmp_path / "model.safetensors"
    write(path)
    with pytest.raises(UserError) as info:
        ModelSpec.load(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_load_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError):
        ModelSpec.load(tmp_path / "absent.safetensors")


def write_model_file(path, state, spec_json):
    """A safetensors file with ``state`` and a record holding ``spec_json`` as its spec and the digest of ``state``,
    however wrong either is."""
    from safetensors.torch import save_file

    record = f'{{"spec": {spec_json}, "numerics": {{}}, "sha256": "{tensor_digest(state)}", "trained_with": null}}'
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata={METADATA_KEY: record})


SMALL = ModelSpec(variant="v", hidden=(8,), init="normal", bias_init="normal")


@pytest.mark.parametrize(
    "spec_json, expected",
    [
        pytest.param('{"variant": "v", "hidden": [1500000], "init": "normal", "dropout_p": 0.0}',
                     "metadata hidden: 1,192,500,010 parameters, over the 50,000,000 allowed", id="huge_hidden"),
        pytest.param('{"variant": "v", "init": "normal", "dropout_p": 0.0}', "metadata hidden: Field required",
                     id="missing_key"),
        pytest.param('{"variant": "../../escape", "hidden": [8], "init": "normal"}', "metadata variant: String should",
                     id="path_in_variant"),
        pytest.param('{"variant": "v\\u001b[31m", "hidden": [8], "init": "normal"}', "metadata variant: String should",
                     id="terminal_escape_in_variant"),
        pytest.param('{"variant": "v", "hidden": [8], "init": "normal", "x": "' + "a" * 5000 + '"}',
                     "bytes of metadata", id="oversized_metadata"),
    ],
)
def test_metadata_is_checked_before_any_model_is_built(tmp_path, monkeypatch, spec_json, expected):
    built = []
    monkeypatch.setattr(ModelSpec, "build", lambda self: built.append(self))
    path = tmp_path / "m.safetensors"
    write_model_file(path, {"0.weight": torch.zeros(8, 784)}, spec_json)
    with pytest.raises(UserError) as info:
        ModelSpec.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a mnist_dnn model file") and expected in message
    assert "\n" not in message and "\x1b" not in message and len(message) < 300
    assert built == []


def test_tensor_shapes_are_checked_against_the_metadata_from_the_header(tmp_path):
    state = SMALL.build().state_dict()
    state["0.weight"] = torch.zeros(9, 784)
    path = tmp_path / "m.safetensors"
    write_model_file(path, state, SMALL.model_dump_json())
    with pytest.raises(UserError, match=r"'0\.weight': F32 \[9, 784\], expected F32 \[8, 784\]"):
        ModelSpec.load(path)


def test_weights_of_another_dtype_are_refused(tmp_path):
    state = {k: v.double() for k, v in SMALL.build().state_dict().items()}
    path = tmp_path / "m.safetensors"
    write_model_file(path, state, SMALL.model_dump_json())
    with pytest.raises(UserError, match=r"'0\.bias': F64 \[8\], expected F32 \[8\]"):
        ModelSpec.load(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    model = SMALL.build()
    with torch.no_grad():
        model[2].weight[3, 4] = bad
    path = tmp_path / "m.safetensors"
    SMALL.save(model, path)
    with pytest.raises(UserError, match=r"weights are not finite \(NaN or infinity in 2\.weight\)"):
        ModelSpec.load(path)


def test_a_spec_over_the_parameter_limit_cannot_be_made():
    with pytest.raises(ValueError, match="over the 50,000,000 allowed"):
        ModelSpec(variant="v", hidden=(100_000_000,), init="normal", bias_init="normal")


# ---- the digest of the weights: a corrupt copy is refused, not served ---------------------------------------


def flip_a_bit(path, offset_from_end=5):
    """Flip one bit of a weight: the last bytes of a safetensors file are tensor data."""
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_saved_model_carries_the_digest_of_its_weights(tmp_path):
    path = tmp_path / "m.safetensors"
    model = SMALL.build()
    SMALL.save(model, path)
    with safe_open(path, framework="pt") as f:
        digest = json.loads(f.metadata()[METADATA_KEY])["sha256"]
    assert digest == tensor_digest(model.state_dict()) and len(digest) == 64


def test_one_flipped_bit_in_the_weights_is_refused_as_a_corrupt_copy(tmp_path):
    path = tmp_path / "m.safetensors"
    SMALL.save(SMALL.build(), path)
    ModelSpec.load(path)
    flip_a_bit(path)
    with pytest.raises(UserError) as info:
        ModelSpec.load(path)
    assert str(info.value) == (f"{path}: weights do not match their digest (corrupt copy; run dvc checkout --relink "
                               "or dvc pull)")


def test_the_digest_covers_each_tensors_name_shape_and_bytes():
    state = SMALL.build().state_dict()
    digest = tensor_digest(state)
    swapped = dict(state) | {"0.bias": state["0.bias"].flip(0)}
    renamed = {("x" + name if name == "0.bias" else name): t for name, t in state.items()}
    reshaped = dict(state) | {"0.weight": state["0.weight"].reshape(784, 8)}
    assert len({digest, tensor_digest(swapped), tensor_digest(renamed), tensor_digest(reshaped)}) == 4
    assert tensor_digest(dict(reversed(state.items()))) == digest  # the order of the dict does not count


def test_a_model_file_of_an_older_format_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"  # the spec alone, under the key files had before the record
    save_file(SMALL.build().state_dict(), path, metadata={"mnist_dnn.spec": SMALL.model_dump_json()})
    with pytest.raises(UserError, match=r"^.*old\.safetensors: not a mnist_dnn model file \(no mnist_dnn in its "
                       r"metadata\)$"):
        ModelSpec.load(path)


# ---- memory: however many tensors a header lists ------------------------------------------------------------


def write_header_only(path, entries):
    """A safetensors file of ``entries`` zero-size F32 tensors, as a tampered remote may serve: written as a stream,
    the length of its header last."""
    with open(path, "wb") as f:
        f.write(bytes(8))
        f.write(b'{"__metadata__":' + json.dumps({METADATA_KEY: SMALL.model_dump_json()}).encode())
        for i in range(entries):
            f.write(b',"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i)
        f.write(b"}")
        length = f.tell() - 8
        f.seek(0)
        f.write(struct.pack("<Q", length))


def test_a_header_longer_than_any_models_is_refused_before_safetensors_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    write_header_only(path, 20_000)
    monkeypatch.setattr(model_file, "safe_open", lambda *args, **kwargs: pytest.fail("safetensors parsed the header"))
    for read in (ModelSpec.load, read_record):
        with pytest.raises(UserError, match=rf"^{path}: not a mnist_dnn model file \(a safetensors header of [\d,]+ "
                                            r"bytes, over the 1,048,576 allowed\)$"):
            read(path)


def test_a_95_mb_file_of_1_6_million_zero_size_tensors_is_refused_within_the_caps(tmp_path, run_capped):
    path = tmp_path / "many.safetensors"
    write_header_only(path, 1_600_000)
    assert path.stat().st_size > 90_000_000
    code = ("import sys; from mnist_dnn.lecture.models import ModelSpec; "
            "from mnist_dnn.stage.runtime import run_stage; "
            "run_stage(ModelSpec.load, sys.argv[1])")
    result = run_capped(code, path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: not a mnist_dnn model file (a safetensors header of 9")
    assert result.stderr.count("\n") == 1


def test_the_largest_model_has_a_header_well_within_the_bound(tmp_path):
    spec = ModelSpec(variant="v" * 64, hidden=(1,) * models.MAX_LAYERS, init="xavier_uniform", dropout_p=0.5,
                     bias_init="pytorch")
    path = tmp_path / "deep.safetensors"
    spec.save(spec.build(), path, numerics={"k" * 100: "v" * 3000})
    header = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert header < model_file.MAX_HEADER_BYTES / 50
    assert ModelSpec.load(path)[1] == spec
