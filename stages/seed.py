"""DVC stage `seed@<variant>-<seed>`: train one variant with one of `extra_seeds`, and test it (seed noise)."""

from mnist_dnn.errors import UserError
from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.evaluation import evaluate
from mnist_dnn.stage import files, numerics
from mnist_dnn.stage.device import select_device
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params()
    spec = params.model_spec(args.variant)
    if args.seed not in params.extra_seeds:
        raise UserError(f"seed {args.seed} is not in params.yaml extra_seeds {params.extra_seeds}")
    hp = params.train.model_copy(update={"seed": args.seed})
    device = select_device()
    train, val, test = data.load_splits(args.train, args.val, args.test, device=device)
    print(f"{spec.variant} with seed {hp.seed}: {spec.architecture}, on {device}")
    with files.atomic_outputs(args.model, args.metrics) as (model_path, metrics_path):
        model, history = training.train(spec, hp, params.optimizer, (train, val))
        metrics, _ = evaluate(model, *test)
        trained_with = params.trained_with(args.variant, args.seed)
        spec.save(model, model_path, numerics.recorded(device), trained_with)
        costs = [log.train_loss_after_step for log in history]
        files.write_json(metrics_path, {"accuracy": metrics["accuracy"], "loss": metrics["loss"],
                                        "loss_after_step": costs, "trained_with": trained_with})
    print(f"{spec.variant} with seed {hp.seed}: test accuracy {metrics['accuracy']:.4f}")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("variant", help="a variant of params.yaml")
    parser.add_argument("seed", type=int, help="one of params.yaml's extra_seeds")
    parser.add_argument("--train", required=True, help="training split")
    parser.add_argument("--val", required=True, help="validation split")
    parser.add_argument("--test", required=True, help="test split")
    parser.add_argument("--model", required=True, help="weights file to write")
    parser.add_argument("--metrics", required=True, help="test metrics JSON to write")
    run_stage(main, parser.parse_args())
