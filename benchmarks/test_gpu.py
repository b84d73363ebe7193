"""The GPU check of issue 14, run by benchmarks/gpu_check.sh on a CUDA machine; outside tests/, so `make test` (no GPU
in CI) never collects it. It trains every variant on the prepared MNIST splits (``$PREPARED``, default
data/prepared) with CUDA graphs twice and eagerly once, and each optimizer of the study briefly both ways."""

import json
import os
from pathlib import Path

import pytest
import torch

from mnist_dnn.lecture import cuda_graphs, data, evaluation, training
from mnist_dnn.lecture.config import OptimizerParams, load_params
from mnist_dnn.lecture.optimizers import build_optimizer, is_capturable

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
PREPARED = Path(os.environ.get("PREPARED", REPO / "data/prepared"))
TOLERANCE = 0.003  # 0.3 percentage points of test accuracy


@pytest.fixture(scope="session", autouse=True)
def cuda():
    assert torch.cuda.is_available(), "the GPU check needs a CUDA device; run it with benchmarks/gpu_check.sh"


@pytest.fixture(scope="session")
def splits():
    paths = [PREPARED / f"{split}.safetensors" for split in ("train", "val", "test")]
    return data.load_splits(*paths, device="cuda")


def train(spec, hp, opt, splits, graph_steps=None):
    """Weights, epoch logs and test accuracy of one run; with ``graph_steps=None`` fit picks graphs where it can."""
    train_split, val, test = splits
    model, optimizer = training.setup(spec, hp, opt, "cuda")
    logs = list(training.fit(model, optimizer, (train_split, val), hp, spec.variant, graph_steps=graph_steps))
    return {k: v.clone() for k, v in model.state_dict().items()}, logs, evaluation.accuracy(model, *test)


@pytest.fixture(scope="session")
def runs(splits):
    """Each variant with graphs twice, and eagerly once."""
    modes = {"graph": cuda_graphs.GRAPH_STEPS, "graph again": cuda_graphs.GRAPH_STEPS, "eager": 0}
    return {
        name: {mode: train(PARAMS.model_spec(name), PARAMS.train, PARAMS.optimizer, splits, steps)
               for mode, steps in modes.items()}
        for name in PARAMS.variants
    }


@pytest.mark.parametrize("variant", PARAMS.variants)
def test_graphs_and_eager_steps_agree_within_0_3_points(runs, variant):
    graph, eager = runs[variant]["graph"], runs[variant]["eager"]
    same = all(torch.equal(graph[0][k], eager[0][k]) for k in graph[0])
    print(f"{variant}: test accuracy {graph[2]:.4f} with graphs, {eager[2]:.4f} eager; bit-identical: {same}")
    assert abs(graph[2] - eager[2]) <= TOLERANCE


@pytest.mark.parametrize("variant", PARAMS.variants)
def test_reruns_with_graphs_are_bit_identical(runs, variant):
    (weights, logs, accuracy), (weights_again, logs_again, accuracy_again) = (
        runs[variant]["graph"], runs[variant]["graph again"]
    )
    assert logs == logs_again and accuracy == accuracy_again
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)


@pytest.mark.parametrize("variant", PARAMS.variants)
def test_graph_accuracy_is_within_the_cpu_seeds_range(runs, variant):
    row = {row["variant"]: row for row in json.loads((REPO / "metrics/seed_noise.json").read_text())}[variant]
    accuracy = runs[variant]["graph"][2]
    print(f"{variant}: {accuracy:.4f} with graphs; CPU seeds {row['min']:.4f}–{row['max']:.4f}")
    assert row["min"] - TOLERANCE <= accuracy <= row["max"] + TOLERANCE


STUDY = dict(PARAMS.optimizer_study.optimizers)
# l1 and l2 make the step count matter to AdagradDA and the thresholds matter to the proximal ones
STUDY |= {
    f"{name} (l1, l2)": OptimizerParams(name=name, lr=0.1, l1=1e-4, l2=1e-3)
    for name in ("ftrl", "proximal_gd", "proximal_adagrad", "adagrad_da")
}


@pytest.mark.parametrize("name", STUDY)
def test_each_optimizer_steps_in_a_graph_as_it_does_eagerly(splits, name):
    opt = STUDY[name]
    spec = PARAMS.model_spec(PARAMS.optimizer_study.variant)
    hp = PARAMS.train.model_copy(update={"epochs": 2})
    (inputs, targets), val, test = splits
    subset = (inputs[:10_000], targets[:10_000]), val, test
    _, optimizer = training.setup(spec, hp, opt, "cuda")
    print(f"{name}: {'graphs' if is_capturable(optimizer) else 'eager'}")
    graphed, _, accuracy = train(spec, hp, opt, subset)  # 200 steps: 50 eager, then 3 replays of 50
    eager, _, eager_accuracy = train(spec, hp, opt, subset, graph_steps=0)
    assert abs(accuracy - eager_accuracy) <= TOLERANCE
    torch.testing.assert_close(graphed, eager, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["ftrl", "proximal_gd", "proximal_adagrad", "adagrad_da"])
def test_our_optimizers_step_on_the_gpu_without_a_host_sync(name):
    w = torch.randn(1000, device="cuda", requires_grad=True)
    optimizer = build_optimizer(name, [w], 0.1, capturable=True, l1=1e-4, l2=1e-3)
    for _ in range(3):
        w.grad = torch.randn(1000, device="cuda")
        torch.cuda.set_sync_debug_mode("error")
        try:
            optimizer.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(w).all()
