import functools
import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import pytest
from torchvision.datasets import MNIST

from mnist_dnn.download import BadFile, check_idx, download_mnist, fetch, fetch_verified, mirror_urls, verify
from mnist_dnn.errors import UserError


def idx(shape, magic=0x00000803):
    """An IDX ubyte file: magic number, big-endian dims, then one byte per element."""
    n = 1
    for d in shape:
        n *= d
    body = bytes(i % 256 for i in range(n))
    return struct.pack(f">I{len(shape)}I", magic, *shape) + body


def sha(data):
    return hashlib.sha256(data).hexdigest()


def mirror(folder, files):
    """A mirror folder holding ``<name>.gz`` for each name → gzipped bytes; its file:// base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, compressed in files.items():
        (folder / f"{name}.gz").write_bytes(compressed)
    return folder.as_uri() + "/"


IMAGES = idx((2, 3, 3), magic=0x00000803)
LABELS = idx((5,), magic=0x00000801)


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 3)])
def test_check_idx_returns_shape_of_good_file(shape):
    assert check_idx(idx(shape, magic=0x00000800 + len(shape))) == shape


@pytest.mark.parametrize(
    "data",
    [
        IMAGES[:-1],  # truncated body
        IMAGES + b"\0",  # too long
        idx((2, 3, 3), magic=0x00000903),  # not unsigned bytes
        b"\x01" + IMAGES[1:],  # nonzero first byte of the magic
        idx((2, 3, 3), magic=0x00000804),  # 4 dims claimed, header too short for them
        IMAGES[:10],  # truncated header
        b"",
    ],
    ids=["truncated", "too-long", "type-0x09", "nonzero-magic", "ndim-mismatch", "truncated-header", "empty"],
)
def test_check_idx_rejects_bad_file(data):
    with pytest.raises(BadFile):
        check_idx(data)


def test_verify_returns_decompressed_data():
    assert verify(gzip.compress(IMAGES), sha(IMAGES)) == IMAGES


@pytest.mark.parametrize(
    "compressed",
    [gzip.compress(IMAGES)[:-8], gzip.compress(IMAGES)[:20], b"not a gzip file at all", gzip.compress(b"not idx")],
    ids=["truncated-gzip", "truncated-early", "not-gzip", "not-idx"],
)
def test_verify_rejects_corrupt_file(compressed):
    with pytest.raises(BadFile):
        verify(compressed, sha(IMAGES))


def test_verify_rejects_wrong_hash():
    with pytest.raises(BadFile, match="SHA-256"):
        verify(gzip.compress(IMAGES), sha(LABELS))


def test_fetch_verified_tries_next_mirror(tmp_path):
    name = "train-images-idx3-ubyte"
    bad = mirror(tmp_path / "bad", {name: gzip.compress(IMAGES)[:-8]})
    good = mirror(tmp_path / "good", {name: gzip.compress(IMAGES)})
    assert fetch_verified(name, sha(IMAGES), [bad, good]) == IMAGES


def test_fetch_verified_skips_mirror_without_the_file(tmp_path):
    name = "train-images-idx3-ubyte"
    empty = mirror(tmp_path / "empty", {})
    good = mirror(tmp_path / "good", {name: gzip.compress(IMAGES)})
    assert fetch_verified(name, sha(IMAGES), [empty, good]) == IMAGES


def test_fetch_verified_raises_user_error_when_no_mirror_has_it(tmp_path):
    name = "train-images-idx3-ubyte"
    corrupt = mirror(tmp_path / "corrupt", {name: gzip.compress(IMAGES)[:-8]})
    wrong = mirror(tmp_path / "wrong", {name: gzip.compress(LABELS)})
    empty = mirror(tmp_path / "empty", {})
    with pytest.raises(UserError) as info:
        fetch_verified(name, sha(IMAGES), [corrupt, wrong, empty])
    message = str(info.value)
    assert name in message
    assert "\n" not in message


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_fetch_verified_over_http(http_root):
    root, base = http_root
    name = "t10k-labels-idx1-ubyte"
    mirror(root, {name: gzip.compress(LABELS)})
    # the first mirror answers 404, the second serves the file
    assert fetch_verified(name, sha(LABELS), [base + "missing/", base]) == LABELS


def test_download_mnist_writes_raw_files(tmp_path):
    files = {"train-images-idx3-ubyte": IMAGES, "train-labels-idx1-ubyte": LABELS}
    url = mirror(tmp_path / "mirror", {n: gzip.compress(d) for n, d in files.items()})
    root = tmp_path / "out" / "raw"
    download_mnist(root, [url], files={n: sha(d) for n, d in files.items()})
    assert {p.name: p.read_bytes() for p in (root / "MNIST" / "raw").iterdir()} == files
    assert sorted(p.name for p in root.parent.iterdir()) == ["raw"]


def test_download_mnist_failure_leaves_nothing(tmp_path):
    url = mirror(tmp_path / "mirror", {"good-file": gzip.compress(IMAGES), "bad-file": gzip.compress(LABELS)[:-8]})
    root = tmp_path / "out" / "raw"
    with pytest.raises(UserError, match="bad-file"):
        download_mnist(root, [url], files={"good-file": sha(IMAGES), "bad-file": sha(LABELS)})
    assert not root.exists()
    assert list(root.parent.iterdir()) == []


def test_download_mnist_failure_keeps_old_content(tmp_path):
    url = mirror(tmp_path / "mirror", {"a": gzip.compress(IMAGES)})
    root = tmp_path / "out" / "raw"
    old = root / "MNIST" / "raw" / "a"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    with pytest.raises(UserError):
        download_mnist(root, [url], files={"a": sha(IMAGES), "b": sha(LABELS)})
    assert old.read_bytes() == b"old"
    assert [p.name for p in old.parent.iterdir()] == ["a"]
    assert [p.name for p in root.parent.iterdir()] == ["raw"]


def test_mirror_urls_default_is_torchvision_mirrors():
    assert mirror_urls(None) == list(MNIST.mirrors)


def test_mirror_urls_puts_local_folder_first(tmp_path):
    mirror(tmp_path, {"x": b"payload"})
    urls = mirror_urls(tmp_path)
    assert urls[0] == Path(tmp_path).resolve().as_uri() + "/"
    assert urls[1:] == list(MNIST.mirrors)
    assert fetch(urls[0] + "x.gz") == b"payload"
