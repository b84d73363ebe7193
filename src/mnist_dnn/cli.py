"""The ``mnist-dnn`` console command; ``mnist-dnn predict`` gets one digit and predicts it, as the lecture's labs end."""

import argparse
import json
import random
import re

from mnist_dnn import data, outputs, paths, predict
from mnist_dnn.errors import UserError
from mnist_dnn.models import NAME_PATTERN, ModelSpec
from mnist_dnn.stage import run_stage


def best_variant(summary_path=paths.SUMMARY):
    """The variant with the highest reproduced accuracy in the committed summary."""
    rows = outputs.read_json(summary_path, outputs.Ranking, "dvc repro summarize")
    return max(rows, key=lambda row: row["reproduced_accuracy"])["variant"]


def test_image(index, seed):
    """Test image ``index`` (or a seeded random one when ``index`` is None) and its label."""
    images, labels = data.load_split(paths.TEST_SPLIT)
    if index is None:
        index = random.Random(seed).randrange(len(images))
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: the test set has images 0 to {len(images) - 1}")
    return index, images[index], int(labels[index])


def model_path(variant):
    """``models/<variant>.safetensors``, for a variant name that cannot lead out of models/."""
    if not re.fullmatch(NAME_PATTERN, variant):
        raise UserError(f"{variant[:80]!r}: not a variant name (lowercase letters, digits and _)")
    return paths.model_file(variant)


def run_predict(args):
    """Predict one image as ``args`` ask, and print the result as text or JSON."""
    for option in ("variant", "model", "image"):
        if getattr(args, option) == "":
            raise UserError(f"--{option}: an empty value names nothing")
    model, spec = ModelSpec.load(args.model or model_path(args.variant or best_variant()))
    if args.model and args.variant and spec.variant != args.variant:
        raise UserError(f"{args.model}: holds {spec.variant}, not {args.variant[:80]!r} as --variant says")
    if args.image is not None:
        source, image, label = args.image, predict.to_mnist(predict.load_image(args.image)), None
    else:
        index, image, label = test_image(args.index, args.seed)
        source = f"test image {index}"
    top3 = predict.top_k(model, image, k=3)
    result = {
        "variant": spec.variant,
        "source": source,
        "label": label,
        "prediction": top3[0][0],
        "top3": [{"digit": digit, "probability": p} for digit, p in top3],
        "image": predict.terminal_art(image),
    }
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return
    print(f"variant:    {result['variant']}")
    print(f"image:      {source}")
    if label is not None:
        print(f"label:      {label}")
    print(f"prediction: {result['prediction']}")
    print("top 3:      " + ", ".join(f"{digit} ({p:.2%})" for digit, p in top3))
    print("\n".join(result["image"]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mnist-dnn", description="The lecture's MNIST models, reproduced.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="predict one digit: a test image or your own PNG/JPEG")
    p.add_argument("--variant", help="trained variant to use (default: the best one in metrics/summary.json)")
    p.add_argument("--model", help="weights file to use (default: models/<variant>.safetensors)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--index", type=int, help="test image number")
    source.add_argument("--image", help="a PNG or JPEG of one digit, any size, dark-on-light or light-on-dark")
    p.add_argument("--seed", type=int, default=777,
                   help="seed of the random test image shown without --index or --image (default: 777)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    push = commands.add_parser("push-run-cache", help="verify-cache, then dvc push --run-cache, and the outputs of "
                               "its entries it misses")
    push.add_argument("--remote", "-r", help="DVC remote (default: the default remote)")
    commands.add_parser("verify-cache", help="check every object of the local DVC cache against the md5 it is named by")
    args = parser.parse_args(argv)
    if args.command == "predict":
        run_stage(run_predict, args)
        return
    from mnist_dnn import sharing  # imports DVC: only for these commands

    if args.command == "push-run-cache":
        run_stage(sharing.push_run_cache, args.remote)
    else:
        run_stage(sharing.verify_cache)


if __name__ == "__main__":
    main()
