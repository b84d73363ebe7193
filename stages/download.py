"""DVC stage `download`: the four MNIST files, verified, into the layout torchvision reads (<raw>/MNIST/raw)."""

import os

from mnist_dnn.lecture import download
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    download.download_mnist(args.raw, download.mirror_urls(os.environ.get(download.MIRROR_ENV)))


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("raw", help="folder to write")
    run_stage(main, parser.parse_args())
