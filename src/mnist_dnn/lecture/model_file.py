"""The model file: safetensors whose metadata records the model's spec, numerics, digest and provenance; read
without torch, its header's length checked before safetensors parses it."""

import hashlib
import json
import struct
from contextlib import contextmanager

import numpy
from safetensors import SafetensorError, safe_open

from mnist_dnn.errors import UserError, one_line
from mnist_dnn.stage import provenance

# The metadata: one key (safetensors writes several in a random order) holding {"spec", "numerics", "sha256",
# "trained_with"}, the numerics being what decided the weights' float bits (numerics.recorded), the sha256 the weights'
# digest (tensor_digest), so that a corrupt copy is refused rather than served, and trained_with the params and seed
# the model was trained with (provenance.record), null for a model saved outside the stages.
METADATA_KEY = "mnist_dnn"
RECORD_KEYS = {"spec", "numerics", "sha256", "trained_with"}
MAX_METADATA_BYTES = 4096
MAX_HEADER_BYTES = 2**20  # a model's safetensors header: ~100 bytes a tensor, at most 130 tensors, and metadata


def metadata_record(metadata):
    """The mnist_dnn record in a model file's metadata: ``{"spec", "numerics", "sha256", "trained_with"}``; a
    UserError if there is none or it is not one."""
    text = metadata.get(METADATA_KEY)
    if text is None:
        raise UserError(f"not a mnist_dnn model file (no {METADATA_KEY} in its metadata)")
    if len(text) > MAX_METADATA_BYTES:
        raise UserError(f"not a mnist_dnn model file ({len(text):,} bytes of metadata)")
    try:
        found = json.loads(text)
    except ValueError as err:
        raise UserError(f"not a mnist_dnn model file (metadata: {one_line(err)})") from None
    if (not isinstance(found, dict) or set(found) != RECORD_KEYS or not isinstance(found["numerics"], dict)
            or not isinstance(found["sha256"], str)):
        raise UserError(f"not a mnist_dnn model file (metadata {METADATA_KEY} is not a record of "
                        f"{', '.join(sorted(RECORD_KEYS))})")
    if found["trained_with"] is not None:
        try:
            provenance.checked(found["trained_with"])
        except UserError as err:
            raise UserError(f"not a mnist_dnn model file (metadata {err})") from None
    return found


def tensor_digest(state):
    """SHA-256 of ``state``'s CPU tensors, in name order: each one's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).numpy().view(numpy.uint8))
    return digest.hexdigest()


def check_digest(state, record):
    """A UserError unless ``state`` matches the digest in a model file's ``record``."""
    if tensor_digest(state) != record["sha256"]:
        raise UserError("weights do not match their digest (corrupt copy; run dvc checkout --relink or dvc pull)")


def check_header(path, kind="mnist_dnn model file"):
    """A UserError (not a ``kind``) if the safetensors header of ``path`` is longer than any of this project's files
    needs: read before safetensors parses it, since its memory grows with the number of tensors the header lists."""
    with open(path, "rb") as f:
        prefix = f.read(8)
    length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
    if length > MAX_HEADER_BYTES:
        raise UserError(f"not a {kind} (a safetensors header of {length:,} bytes, over the {MAX_HEADER_BYTES:,} "
                        "allowed)")


@contextmanager
def opened(path, framework="numpy"):
    """The model file ``path`` opened with safetensors once its header's length is checked; any failure inside is a
    UserError naming the file."""
    try:
        check_header(path)
        with safe_open(path, framework=framework) as f:
            yield f
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    except (OSError, SafetensorError) as err:
        raise UserError(f"{path}: not a mnist_dnn model file ({type(err).__name__}: {one_line(err)})") from None


def read_record(path):
    """The record in the model file at ``path`` (metadata_record); the weights are not read."""
    with opened(path) as f:
        return metadata_record(f.metadata() or {})
