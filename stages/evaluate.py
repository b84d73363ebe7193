"""DVC stage `evaluate@<variant>`: test metrics and the confusion-matrix data of one trained variant."""

import pandas as pd

from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.evaluation import evaluate
from mnist_dnn.lecture.models import load_as
from mnist_dnn.stage import files
from mnist_dnn.stage.device import select_device
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params(training=False)
    device = select_device()
    model, record = load_as(args.model, params.model_spec(args.variant), params.trained_with(args.variant))
    (inputs, targets), = data.load_splits(args.test, device=device)
    metrics, predicted = evaluate(model.to(device), inputs, targets)
    metrics["numerics"] = record["numerics"]  # how the weights were computed, for the summary
    metrics["trained_with"] = record["trained_with"]  # what with, checked again by summarize and report
    confusion = pd.DataFrame({"actual": targets.cpu().numpy(), "predicted": predicted.cpu().numpy()})
    with files.atomic_outputs(args.metrics, args.confusion) as (metrics_path, confusion_path):
        files.write_json(metrics_path, metrics)
        confusion.to_csv(confusion_path, index=False)
    print(f"{args.variant}: test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("variant", help="a variant of params.yaml")
    parser.add_argument("--model", required=True, help="the variant's weights")
    parser.add_argument("--test", required=True, help="test split")
    parser.add_argument("--metrics", required=True, help="test metrics JSON to write")
    parser.add_argument("--confusion", required=True, help="actual and predicted class per test image, CSV to write")
    run_stage(main, parser.parse_args())
