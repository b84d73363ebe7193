"""Fetch the four MNIST files from a local mirror or the public ones, verified by the SHA-256 of their content."""

import gzip
import hashlib
import math
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from torchvision.datasets import MNIST

from mnist_dnn.errors import UserError
from mnist_dnn.files import atomic_outputs

MIRROR_ENV = "MNIST_MIRROR"

# SHA-256 of the decompressed IDX files: any faithful mirror, however it gzips, serves these bytes.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

IDX_UBYTE = 0x08


class BadFile(Exception):
    """A downloaded file that is not the expected MNIST file."""


def mirror_urls(local_mirror=None):
    """Base URLs to try in order: the local mirror folder (if given), then torchvision's public mirrors."""
    local = [Path(local_mirror).resolve().as_uri() + "/"] if local_mirror else []
    return local + list(MNIST.mirrors)


def check_idx(data):
    """Check the header and length of an IDX file of unsigned bytes; return its shape."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or not 1 <= data[3] <= 3:
        raise BadFile(f"not an IDX file of unsigned bytes (magic number 0x{data[:4].hex()})")
    header_size = 4 + 4 * data[3]
    if len(data) < header_size:
        raise BadFile(f"truncated IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{data[3]}I", data[4:header_size])
    expected = header_size + math.prod(shape)
    if len(data) != expected:
        raise BadFile(f"IDX file of shape {shape} should be {expected} bytes, got {len(data)}")
    return shape


def verify(compressed, sha256):
    """Decompress a downloaded ``.gz`` file, check it is a whole IDX file with SHA-256 ``sha256``; return it."""
    try:
        data = gzip.decompress(compressed)
    except (EOFError, OSError, zlib.error) as err:
        raise BadFile(f"corrupt or truncated gzip ({err})") from None
    check_idx(data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BadFile(f"SHA-256 {digest[:12]}… does not match the expected {sha256[:12]}…")
    return data


def fetch(url, timeout=60):
    """The bytes at ``url`` (``file://``, ``http://`` or ``https://``)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch_verified(name, sha256, mirrors):
    """``name`` decompressed and verified, from the first mirror that serves it intact."""
    failures = []
    for base in mirrors:
        url = f"{base}{name}.gz"
        try:
            data = verify(fetch(url), sha256)
        except (OSError, BadFile) as err:  # URLError and timeouts are OSErrors
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            print(f"{name}: refused {url}: {reason}")
            failures.append(f"{url}: {reason}")
            continue
        print(f"{name}: verified, from {url}")
        return data
    raise UserError(f"no mirror served an intact {name} ({'; '.join(failures)})")


def download_mnist(root, mirrors, files=SHA256):
    """Write the verified IDX files under ``root/MNIST/raw``, the layout torchvision's MNIST reads."""
    with atomic_outputs(root) as (tmp,):
        raw = tmp / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, sha256 in files.items():
            (raw / name).write_bytes(fetch_verified(name, sha256, mirrors))

