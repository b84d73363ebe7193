"""DVC stage `prepare`: split validation off the training set; save uint8 tensors for each split."""

from mnist_dnn import data
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage


def main():
    params = load_params()
    train, val = data.split_validation(
        *data.load_mnist("data/raw", train=True), params.data.val_size, params.data.split_seed
    )
    test = data.load_mnist("data/raw", train=False)
    for name, (images, labels) in {"train": train, "val": val, "test": test}.items():
        data.save_split(f"data/prepared/{name}.safetensors", images, labels)
        print(f"{name}: {len(labels)} images")


if __name__ == "__main__":
    run_stage(main)
