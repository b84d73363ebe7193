import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
from torchvision.datasets import MNIST

from mnist_dnn.errors import UserError
from mnist_dnn.lecture.download import (
    BadFile,
    check_idx,
    download_mnist,
    fetch,
    fetch_verified,
    max_compressed_size,
    mirror_urls,
    verify,
)


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
    assert verify(gzip.compress(IMAGES), sha(IMAGES), len(IMAGES)) == IMAGES


@pytest.mark.parametrize(
    "compressed",
    [gzip.compress(IMAGES)[:-8], gzip.compress(IMAGES)[:20], b"not a gzip file at all", gzip.compress(b"not idx")],
    ids=["truncated-gzip", "truncated-early", "not-gzip", "not-idx"],
)
def test_verify_rejects_corrupt_file(compressed):
    with pytest.raises(BadFile):
        verify(compressed, sha(IMAGES), len(IMAGES))


def test_verify_rejects_wrong_hash():
    with pytest.raises(BadFile, match="SHA-256"):
        verify(gzip.compress(IMAGES), sha(LABELS), len(IMAGES))


def test_fetch_verified_tries_next_mirror(tmp_path):
    name = "train-images-idx3-ubyte"
    bad = mirror(tmp_path / "bad", {name: gzip.compress(IMAGES)[:-8]})
    good = mirror(tmp_path / "good", {name: gzip.compress(IMAGES)})
    assert fetch_verified(name, sha(IMAGES), len(IMAGES), [bad, good]) == IMAGES


def test_fetch_verified_skips_mirror_without_the_file(tmp_path):
    name = "train-images-idx3-ubyte"
    empty = mirror(tmp_path / "empty", {})
    good = mirror(tmp_path / "good", {name: gzip.compress(IMAGES)})
    assert fetch_verified(name, sha(IMAGES), len(IMAGES), [empty, good]) == IMAGES


def test_fetch_verified_raises_user_error_when_no_mirror_has_it(tmp_path):
    name = "train-images-idx3-ubyte"
    corrupt = mirror(tmp_path / "corrupt", {name: gzip.compress(IMAGES)[:-8]})
    wrong = mirror(tmp_path / "wrong", {name: gzip.compress(LABELS)})
    empty = mirror(tmp_path / "empty", {})
    with pytest.raises(UserError) as info:
        fetch_verified(name, sha(IMAGES), len(IMAGES), [corrupt, wrong, empty])
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
    assert fetch_verified(name, sha(LABELS), len(LABELS), [base + "missing/", base]) == LABELS


def test_download_mnist_writes_raw_files(tmp_path):
    files = {"train-images-idx3-ubyte": IMAGES, "train-labels-idx1-ubyte": LABELS}
    url = mirror(tmp_path / "mirror", {n: gzip.compress(d) for n, d in files.items()})
    root = tmp_path / "out" / "raw"
    download_mnist(root, [url], files={n: (sha(d), len(d)) for n, d in files.items()})
    assert {p.name: p.read_bytes() for p in (root / "MNIST" / "raw").iterdir()} == files
    assert sorted(p.name for p in root.parent.iterdir()) == ["raw"]


def test_download_mnist_failure_leaves_nothing(tmp_path):
    url = mirror(tmp_path / "mirror", {"good-file": gzip.compress(IMAGES), "bad-file": gzip.compress(LABELS)[:-8]})
    root = tmp_path / "out" / "raw"
    with pytest.raises(UserError, match="bad-file"):
        files = {"good-file": (sha(IMAGES), len(IMAGES)), "bad-file": (sha(LABELS), len(LABELS))}
        download_mnist(root, [url], files=files)
    assert not root.exists()
    assert list(root.parent.iterdir()) == []


def test_download_mnist_failure_keeps_old_content(tmp_path):
    url = mirror(tmp_path / "mirror", {"a": gzip.compress(IMAGES)})
    root = tmp_path / "out" / "raw"
    old = root / "MNIST" / "raw" / "a"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    with pytest.raises(UserError):
        download_mnist(root, [url], files={"a": (sha(IMAGES), len(IMAGES)), "b": (sha(LABELS), len(LABELS))})
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
    assert fetch(urls[0] + "x.gz", max_bytes=100) == b"payload"


# ---- hostile mirrors: every file is read within a size cap and a time limit, and decompressed within its size --

TRAIN_IMAGES = "train-images-idx3-ubyte"
DOWNLOAD = """
import sys
from mnist_dnn.lecture.download import download_mnist
from mnist_dnn.stage.runtime import run_stage
run_stage(download_mnist, "out", [sys.argv[1]])
"""


def gzip_bomb(size):
    """A valid .gz of ``size`` zero bytes (a multiple of 1 MiB) made of one repeated deflate block: ~1 KB per MiB."""
    zeros = bytes(2**20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)  # a full flush makes every block alike
    crc = functools.reduce(lambda crc, _: zlib.crc32(zeros, crc), range(size // 2**20), 0)
    header = b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff"
    return header + block * (size // 2**20) + deflate.flush() + struct.pack("<II", crc, size % 2**32)


def expect_refused(result, url, reason):
    """The download stage refused ``url`` for ``reason`` in one line, then failed with one error line, exit 2."""
    assert result.returncode == 2, result.stderr
    assert f"{TRAIN_IMAGES}: refused {url}: {reason}" in result.stdout
    assert result.stderr.startswith(f"error: no mirror served an intact {TRAIN_IMAGES}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_gzip_bomb_is_refused_within_memory(tmp_path, run_capped):
    bomb = gzip_bomb(2 * 2**30)
    assert len(bomb) < 3 * 2**20
    url = mirror(tmp_path / "mirror", {TRAIN_IMAGES: bomb})
    result = run_capped(DOWNLOAD, url)
    expect_refused(result, f"{url}{TRAIN_IMAGES}.gz", "decompresses to more than the 47040016 bytes of the IDX file")
    assert not (tmp_path / "out").exists()


def test_verify_decompresses_up_to_the_size_it_expects():
    with pytest.raises(BadFile, match=f"more than the {len(IMAGES) - 1} bytes"):
        verify(gzip.compress(IMAGES), sha(IMAGES), len(IMAGES) - 1)


@pytest.mark.slow
def test_endless_mirror_file_is_refused_at_the_compressed_size_cap(tmp_path, run_capped):
    folder = tmp_path / "mirror"
    folder.mkdir()
    with open(folder / f"{TRAIN_IMAGES}.gz", "wb") as f:
        f.truncate(2**40)  # a sparse 1 TB file: reading it never ends in practice
    url = folder.as_uri() + "/"
    result = run_capped(DOWNLOAD, url)
    expect_refused(result, f"{url}{TRAIN_IMAGES}.gz", f"more than {max_compressed_size(47_040_016)} bytes")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_mirror_entry_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path, run_capped, kind):
    folder = tmp_path / "mirror"
    folder.mkdir()
    path = folder / f"{TRAIN_IMAGES}.gz"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block until a writer comes: none ever does
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    url = folder.as_uri() + "/"
    expect_refused(run_capped(DOWNLOAD, url), f"{url}{TRAIN_IMAGES}.gz", "not a regular file")


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """/endless/…: random bytes without end; /silent/…: headers, then nothing; /trickle/…: a byte every 50 ms."""

    def do_GET(self):
        behaviour = self.path.split("/")[1]
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(200):  # each ends on its own within 10 s, whatever the client does
                if behaviour == "endless":
                    self.wfile.write(os.urandom(2**20))
                elif behaviour == "trickle":
                    self.wfile.write(b"\x1f")
                    self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format, *args):
        pass


@pytest.fixture
def hostile_server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_endless_http_body_is_refused_at_the_compressed_size_cap(hostile_server, run_capped):
    url = f"{hostile_server}/endless/"
    result = run_capped(DOWNLOAD, url)
    expect_refused(result, f"{url}{TRAIN_IMAGES}.gz", f"more than {max_compressed_size(47_040_016)} bytes")


@pytest.mark.parametrize("path, reason", [("/silent/x", "timed out"), ("/trickle/x", "not received within 1 s")])
def test_a_stalling_mirror_times_out(hostile_server, path, reason):
    with pytest.raises((BadFile, TimeoutError), match=reason):
        fetch(hostile_server + path, max_bytes=2**20, read_timeout=0.5, total_timeout=1)
