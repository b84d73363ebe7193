"""Fetch the four MNIST files from a local mirror or the public ones, verified by the SHA-256 of their content.

Mirrors are untrusted: each file is read within a size cap and a time limit, and decompressed only up to the
size of the IDX file it must be.
"""

import gzip
import hashlib
import io
import math
import os
import stat
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from torchvision.datasets import MNIST

from mnist_dnn.errors import UserError
from mnist_dnn.stage.files import atomic_outputs

MIRROR_ENV = "MNIST_MIRROR"

# SHA-256 and size of the decompressed IDX files: any faithful mirror, however it gzips, serves these bytes.
FILES = {
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
}

IDX_UBYTE = 0x08
READ_TIMEOUT = 30  # seconds a mirror may stay silent
FETCH_TIMEOUT = 600  # seconds for one whole file
CHUNK = 2**20


class BadFile(Exception):
    """A downloaded file that is not the expected MNIST file."""


def mirror_urls(local_mirror=None):
    """Base URLs to try in order: the local mirror folder (if given), then torchvision's public mirrors."""
    try:
        local = [Path(local_mirror).resolve().as_uri() + "/"] if local_mirror else []
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        raise UserError(f"{MIRROR_ENV}={local_mirror}: {err}") from None
    return local + list(MNIST.mirrors)


def max_compressed_size(size):
    """The most a faithful ``.gz`` of ``size`` bytes can take: even stored uncompressed, gzip adds under 1%."""
    return size + size // 100 + 2**16


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


def verify(compressed, sha256, size):
    """Decompress a downloaded ``.gz`` file, at most ``size`` bytes of it; check it is the IDX file of SHA-256
    ``sha256`` and return it."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as f:
            data = f.read(size + 1)  # decompressed as a stream: a gzip bomb stops here
    except (EOFError, OSError, zlib.error) as err:
        raise BadFile(f"corrupt or truncated gzip ({err})") from None
    if len(data) > size:
        raise BadFile(f"decompresses to more than the {size} bytes of the IDX file")
    check_idx(data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BadFile(f"SHA-256 {digest[:12]}… does not match the expected {sha256[:12]}…")
    return data


def fetch(url, max_bytes, read_timeout=READ_TIMEOUT, total_timeout=FETCH_TIMEOUT):
    """The bytes at ``url`` (``file://``, ``http://`` or ``https://``): at most ``max_bytes``, within the timeouts.

    A ``file://`` URL must name a regular file: a FIFO or a device could block or never end.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file" and not stat.S_ISREG(os.stat(urllib.request.url2pathname(parsed.path)).st_mode):
        raise BadFile("not a regular file")
    deadline = time.monotonic() + total_timeout
    chunks, received = [], 0
    with urllib.request.urlopen(url, timeout=read_timeout) as response:
        while chunk := response.read1(CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise BadFile(f"more than {max_bytes} bytes, too large for this file")
            if time.monotonic() > deadline:
                raise BadFile(f"not received within {total_timeout} s")
            chunks.append(chunk)
    return b"".join(chunks)


def fetch_verified(name, sha256, size, mirrors):
    """``name`` decompressed and verified, from the first mirror that serves it intact."""
    failures = []
    for base in mirrors:
        url = f"{base}{name}.gz"
        try:
            data = verify(fetch(url, max_compressed_size(size)), sha256, size)
        except (OSError, BadFile) as err:  # URLError and timeouts are OSErrors
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            print(f"{name}: refused {url}: {reason}")
            failures.append(f"{url}: {reason}")
            continue
        print(f"{name}: verified, from {url}")
        return data
    raise UserError(f"no mirror served an intact {name} ({'; '.join(failures)})")


def download_mnist(root, mirrors, files=FILES):
    """Write the verified IDX ``files`` (name → (SHA-256, size)) under ``root/MNIST/raw``, as torchvision reads."""
    with atomic_outputs(root) as (tmp,):
        raw = tmp / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name, (sha256, size) in files.items():
            (raw / name).write_bytes(fetch_verified(name, sha256, size, mirrors))
