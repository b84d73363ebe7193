"""Model and data files travel through DVC remotes, so they are untrusted: nothing the project loads unpickles."""

import json
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from mnist_dnn import cli
from mnist_dnn.errors import UserError
from mnist_dnn.lecture import data, model_file, models


class CreatesFile:
    """A pickle payload: unpickling it calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(params=["torch.save", "pickle.dump"])
def malicious(request, tmp_path):
    """A pickle-based checkpoint whose payload would create ``marker``; returns (path, marker)."""
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    payload = {"0.weight": CreatesFile(marker), "0.bias": torch.zeros(10)}
    if request.param == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path, marker


def test_the_payload_is_real(malicious):
    path, marker = malicious
    if zipfile.is_zipfile(path):  # torch.save's format
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def load_with_predict(path):
    cli.main(["predict", "--model", str(path), "--index", "0"])


@pytest.mark.parametrize("load", [models.ModelSpec.load, data.load_split, load_with_predict])
def test_every_loading_path_refuses_a_pickle_and_never_runs_it(malicious, load, capsys):
    path, marker = malicious
    with pytest.raises((UserError, SystemExit)) as refused:
        load(path)
    if refused.type is SystemExit:
        assert refused.value.code == 2
        assert capsys.readouterr().err.startswith(f"error: {path}: not a mnist_dnn model file")
    assert not marker.exists()


def test_model_file_with_forged_metadata_is_refused(tmp_path):
    state = models.ModelSpec(variant="x", hidden=(8,), init="normal", bias_init="normal").build().state_dict()
    path = tmp_path / "forged.safetensors"
    forged = {"variant": "x", "hidden": [-5], "init": "normal", "dropout_p": 0.0}
    save_file(state, path, metadata={model_file.METADATA_KEY: json.dumps({"spec": forged, "numerics": {}})})
    with pytest.raises(UserError, match="not a mnist_dnn model file"):
        models.ModelSpec.load(path)
