"""DVC stage `download`: the four MNIST files, verified, into data/raw (the layout torchvision reads)."""

import os

from mnist_dnn import download
from mnist_dnn.errors import run_stage


def main():
    mirrors = download.mirror_urls(os.environ.get(download.MIRROR_ENV))
    download.download_mnist("data/raw", mirrors)


if __name__ == "__main__":
    run_stage(main)
