"""make verify's comparisons: the tolerance from seed noise, model hashes from dvc.lock, the accuracy check."""

import math

import pytest

from mnist_dnn import verify
from mnist_dnn.errors import UserError

LOCK = """schema: '2.0'
stages:
  train@softmax:
    cmd: python stages/train.py softmax
    outs:
    - path: metrics/train/softmax/metrics.json
      md5: 1111111111111111111111111111111a
    - path: models/softmax.safetensors
      md5: 2222222222222222222222222222222b
  evaluate@softmax:
    cmd: python stages/evaluate.py softmax
    outs:
    - path: metrics/eval/softmax.json
      md5: 3333333333333333333333333333333c
"""


def test_the_tolerance_is_three_times_the_spread_of_a_difference_of_two_seeds():
    tolerance = verify.tolerances([{"variant": "softmax", "std": 0.001}, {"variant": "dnn", "std": 0.002}])
    assert tolerance == {"softmax": pytest.approx(3 * math.sqrt(2) * 0.001), "dnn": pytest.approx(3 * math.sqrt(2) * 0.002)}


def test_a_seed_noise_file_without_statistics_is_refused_in_one_line():
    with pytest.raises(UserError, match="make seed-noise"):
        verify.tolerances([{"variant": "softmax", "reproduced_accuracy": 0.9}])


def test_model_hashes_are_the_train_stages_models():
    assert verify.model_hashes(LOCK) == {"train@softmax": "2" * 31 + "b"}


def test_accuracies_within_and_beyond_their_tolerance():
    rows = verify.accuracy_rows({"a": 0.90, "b": 0.95, "c": 0.97}, {"a": 0.903, "b": 0.9449}, {"a": 0.004, "b": 0.004})
    by_name = {row[0]: row for row in rows}
    assert by_name["a"][3] == pytest.approx(0.3) and by_name["a"][5]
    assert by_name["b"][3] == pytest.approx(-0.51) and not by_name["b"][5]
    assert by_name["c"][2] is None and not by_name["c"][5]  # a variant the run did not compute fails
