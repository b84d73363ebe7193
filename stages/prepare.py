"""DVC stage `prepare`: split validation off the training set; save uint8 tensors for each split."""

from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params()
    train, val = data.split_validation(
        *data.load_mnist(args.raw, train=True, limit=params.data.limit), params.data.val_size, params.data.split_seed
    )
    splits = {"train": train, "val": val, "test": data.load_mnist(args.raw, train=False, limit=params.data.limit)}
    with files.atomic_outputs(args.train, args.val, args.test) as paths:
        for path, (name, (images, labels)) in zip(paths, splits.items()):
            data.save_split(path, images, labels)
            print(f"{name}: {len(labels)} images")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("raw", help="MNIST as the download stage writes it")
    parser.add_argument("train", help="training split to write")
    parser.add_argument("val", help="validation split to write")
    parser.add_argument("test", help="test split to write")
    run_stage(main, parser.parse_args())
