"""DVC stage `train@<variant>`: train one variant; write its weights and its dvclive training log."""

from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import load_params
from mnist_dnn.stage import files, numerics
from mnist_dnn.stage.device import select_device
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params()
    spec = params.model_spec(args.variant)
    device = select_device()
    train, val = data.load_splits(args.train, args.val, device=device)
    print(f"{spec.variant}: {spec.architecture}, {len(train[0])} training images, on {device}")
    with files.atomic_outputs(args.model, args.log) as (model_path, log_dir):
        model, _ = training.train(spec, params.train, params.optimizer, (train, val), log_dir=log_dir)
        spec.save(model, model_path, numerics.recorded(device), params.trained_with(args.variant))


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("variant", help="a variant of params.yaml")
    parser.add_argument("--train", required=True, help="training split")
    parser.add_argument("--val", required=True, help="validation split")
    parser.add_argument("--model", required=True, help="weights file to write")
    parser.add_argument("--log", required=True, help="dvclive log folder to write")
    run_stage(main, parser.parse_args())
