"""DVC stage `optimizer_study@<name>`: train the optimizer study's variant with one optimizer; test it."""

from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.evaluation import evaluate
from mnist_dnn.stage import files
from mnist_dnn.stage.device import select_device
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params()
    study = params.optimizer_study
    opt = study.optimizer(args.name)
    spec = params.model_spec(study.variant)
    device = select_device()
    train, val, test = data.load_splits(args.train, args.val, args.test, device=device)
    print(f"{spec.variant} with {args.name}: {opt.model_dump()}, on {device}")
    with files.atomic_outputs(args.log, args.metrics) as (log_dir, metrics_path):
        model, history = training.train(spec, params.train, opt, (train, val), log_dir=log_dir)
        metrics, _ = evaluate(model, *test)
        result = {"test_accuracy": metrics["accuracy"], "train_loss": history[-1].train_loss}
        files.write_json(metrics_path, result)
    print(f"{args.name}: test accuracy {result['test_accuracy']:.4f}")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("name", help="an entry of params.yaml's optimizer_study.optimizers")
    parser.add_argument("--train", required=True, help="training split")
    parser.add_argument("--val", required=True, help="validation split")
    parser.add_argument("--test", required=True, help="test split")
    parser.add_argument("--log", required=True, help="dvclive log folder to write")
    parser.add_argument("--metrics", required=True, help="test metrics JSON to write")
    run_stage(main, parser.parse_args())
