"""The stage outputs that `mnist-dnn predict`, the keep_prob sweep, `make verify` and `make results` read, where
dvc.yaml puts them:
each constant is the dvc.yaml var of its name in lower case (tests/test_paths.py holds them together)."""

from pathlib import Path

TRAIN_SPLIT = Path("data/prepared/train.safetensors")
VAL_SPLIT = Path("data/prepared/val.safetensors")
TEST_SPLIT = Path("data/prepared/test.safetensors")
MODELS = Path("models")
EVAL_METRICS = Path("metrics/eval")
SEED_METRICS = Path("metrics/seeds")
SUMMARY = Path("metrics/summary.json")
SUMMARY_TABLE = Path("metrics/summary.md")
TEST_METRICS = Path("metrics/test.json")
NUMERICS = Path("metrics/numerics.json")
SEED_NOISE = Path("metrics/seed_noise.json")
SWEEP = Path("metrics/sweeps/keep_prob.json")
REPORT = Path("metrics/report.html")
PLAYGROUND = Path("metrics/playground.html")


def model_file(variant):
    """The weights that ``train@<variant>`` writes."""
    return MODELS / f"{variant}.safetensors"


def eval_file(variant, folder=EVAL_METRICS):
    """The test metrics that ``evaluate@<variant>`` writes (into ``folder``, where a stage is given another)."""
    return Path(folder, f"{variant}.json")


def seed_file(variant, seed, folder=SEED_METRICS):
    """The test metrics that ``seed@<variant>-<seed>`` writes (into ``folder``, where a stage is given another)."""
    return Path(folder, f"{variant}-{seed}.json")
