"""The ``mnist-dnn`` console command; ``mnist-dnn predict`` gets one digit and predicts it, as the lecture's labs
end."""

import argparse
import json
import os
import random
import re
from pathlib import Path

from mnist_dnn import data, outputs, paths, predict, provenance
from mnist_dnn.config import load_params
from mnist_dnn.errors import UserError
from mnist_dnn.models import NAME_PATTERN, ModelSpec, load_as
from mnist_dnn.runtime import run_stage


def project_root(start="."):
    """The nearest folder at or above ``start`` that holds dvc.yaml, as a path relative to ``start``; ``start``
    itself outside a project (a model fetched with `dvc get`)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return Path(os.path.relpath(folder, here))
    return Path(start)


def best_variant(summary_path=paths.SUMMARY):
    """The variant with the highest reproduced accuracy in the committed summary."""
    rows = outputs.read_json(summary_path, outputs.Ranking, "dvc repro summarize")
    return max(rows, key=lambda row: row["reproduced_accuracy"])["variant"]


def test_image(index, seed, split=paths.TEST_SPLIT):
    """Test image ``index`` (or a seeded random one when ``index`` is None) of ``split``, and its label."""
    images, labels = data.load_split(split)
    if index is None:
        index = random.Random(seed).randrange(len(images))
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: the test set has images 0 to {len(images) - 1}")
    return index, images[index], int(labels[index])


def model_path(variant, root=Path(".")):
    """``models/<variant>.safetensors`` under ``root``, for a variant name that cannot lead out of models/."""
    if not re.fullmatch(NAME_PATTERN, variant):
        raise UserError(f"{variant[:80]!r}: not a variant name (lowercase letters, digits and _)")
    return root / paths.model_file(variant)


def load_model(args, root):
    """The model ``args`` name, its spec and what it was trained with: a variant's is refused unless params.yaml
    trains it so; a ``--model`` file is checked against its own record only, since it may come from elsewhere."""
    if args.model:
        model, spec, record = ModelSpec.load_with_record(args.model)
        if args.variant and spec.variant != args.variant:
            raise UserError(f"{args.model}: holds {spec.variant}, not {args.variant[:80]!r} as --variant says")
        return model, spec, record["trained_with"]
    variant = args.variant or best_variant(root / paths.SUMMARY)
    path, params = model_path(variant, root), load_params(root / "params.yaml", training=False)
    spec = params.model_spec(variant)
    model, record = load_as(path, spec, params.trained_with(variant))
    return model, spec, record["trained_with"]


def run_predict(args):
    """Predict one image as ``args`` ask, and print the result as text or JSON; run from the project's root or any
    folder below it."""
    for option in ("variant", "model", "image"):
        if getattr(args, option) == "":
            raise UserError(f"--{option}: an empty value names nothing")
    root = project_root()
    model, spec, trained_with = load_model(args, root)
    if args.image is not None:
        source, image, label = args.image, predict.to_mnist(predict.load_image(args.image)), None
    else:
        index, image, label = test_image(args.index, args.seed, root / paths.TEST_SPLIT)
        source = f"test image {index}"
    top3 = predict.top_k(model, image, k=3)
    result = {
        "variant": spec.variant,
        "trained_with": trained_with,
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
    if trained_with is not None:
        print(f"trained:    {provenance.describe(trained_with)}")
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
    pull = commands.add_parser("pull-run-cache", help="dvc pull --run-cache, refusing every run-cache entry that "
                               "is not a run of a stage of dvc.yaml or whose outputs contradict it")
    pull.add_argument("--remote", "-r", help="DVC remote (default: the default remote)")
    repro = commands.add_parser("repro", help="dvc repro, each stage a Ray task in its own copy of the workspace, "
                                "at most --jobs at once, on this machine or a Ray cluster")
    repro.add_argument("targets", nargs="*", help="stages, as for dvc repro (default: all)")
    repro.add_argument("--jobs", "-j", type=int, default=os.cpu_count(), help="stages at once (default: the cores)")
    repro.add_argument("--address", help="a running Ray cluster (default: $RAY_ADDRESS, else Ray started here)")
    repro.add_argument("--force", "-f", action="store_true", help="run every stage, even those up to date")
    repro.add_argument("--dry", action="store_true", help="print the stages and what each waits for; run nothing")
    repro.add_argument("--set-param", "-S", action="append", default=[], metavar="KEY=VALUE", dest="params",
                       help="run the stages with this param set, as `dvc exp run -S` does, leaving the workspace as "
                       "it is: the results go to the run-cache, and that `dvc exp run -S` restores them")
    repro.add_argument("--via-remote", action="store_true", help="copies meet at the DVC remote, as on machines "
                       "without this one's disk (the default off this machine)")
    commands.add_parser("verify-cache", help="check every object of the local DVC cache against the md5 it is named by")
    args = parser.parse_args(argv)
    if args.command == "predict":
        run_stage(run_predict, args)
        return
    if args.command == "repro":
        from mnist_dnn import parallel  # imports DVC and Ray: only for this command

        run_stage(parallel.repro, args.targets, args.jobs, args.address, args.force, args.dry, args.via_remote,
                  args.params)
        return
    from mnist_dnn import sharing  # imports DVC: only for these commands

    if args.command == "push-run-cache":
        run_stage(sharing.push_run_cache, args.remote)
    elif args.command == "pull-run-cache":
        run_stage(sharing.pull_run_cache, args.remote)
    else:
        run_stage(sharing.verify_cache)


if __name__ == "__main__":
    main()
