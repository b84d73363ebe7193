"""Get one and predict: safe image loading, MNIST-style preprocessing, top-k predictions, terminal art."""

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_dnn.errors import UserError
from mnist_dnn.evaluation import predict_logits

MAX_IMAGE_BYTES = 10 * 2**20
MAX_PIXELS = 4096 * 4096  # decoded at up to 4 bytes a pixel: 64 MB, and ~0.3 GB at the peak of preprocessing
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # what Pillow opens a 16-bit greyscale PNG as
MIN_CONTRAST = 32  # grey levels between ink and paper; less is a blank page, or JPEG noise on one
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
ART_RAMP = " .:-=+*#%@"


def load_image(path, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_PIXELS):
    """A PNG or JPEG file as an 8-bit grayscale PIL image, upright as its EXIF orientation says, checked before
    decoding; a UserError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{path}: {size} bytes, over the {max_bytes}-byte limit for an image")
    with open(path, "rb") as f:
        head = f.read(8)
    formats = [fmt for signature, fmt in SIGNATURES.items() if head.startswith(signature)]
    if not formats:
        raise UserError(f"{path}: not a PNG or JPEG file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=formats) as image:
                width, height = image.size  # from the header: nothing is decoded yet
                if width * height > max_pixels:
                    raise UserError(f"{path}: {width}×{height} pixels, over the {max_pixels}-pixel limit for an image")
                image.load()
                return to_grayscale(ImageOps.exif_transpose(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UserError(f"{path}: refused as a possible decompression bomb ({err})") from None
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
            raise UserError(f"{path}: cannot decode the {formats[0]} image ({err})") from None


def to_grayscale(image):
    """``image`` as 8-bit grayscale: 16-bit levels scaled to 8 bits, and anything transparent composited on white."""
    if image.mode in SIXTEEN_BIT_MODES:
        levels = np.asarray(image).clip(0, 2**16 - 1) / 257  # 65535 → 255
        return Image.fromarray(levels.round().astype(np.uint8))
    if image.has_transparency_data:  # an alpha channel, or a transparent colour: ink on a transparent canvas
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("L")


def to_mnist(image):
    """A grayscale image of one digit → 28×28 uint8, light on dark, the ink fit in 20×20 and centred by mass.

    A 28×28 image of light ink on black paper is an MNIST digit already, and is returned unchanged. A UserError if
    there is no digit: nothing differs from the paper by ``MIN_CONTRAST`` grey levels.
    """
    pixels = np.asarray(image, dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    inverted = border.mean() > 127
    if inverted:  # dark ink on light paper: MNIST is light on dark
        pixels, border = 255 - pixels, 255 - border
    paper = np.median(border)
    pixels = (pixels - paper).clip(min=0)  # grey paper becomes black
    if pixels.max() < MIN_CONTRAST:
        raise UserError("no digit found: the image is blank, or of one flat colour")
    if pixels.shape == (28, 28) and not inverted and paper == 0:
        return torch.from_numpy(np.array(image, dtype=np.uint8))
    pixels *= 255 / pixels.max()
    ink = pixels > 64
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    digit = Image.fromarray(pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8))
    scale = 20 / max(digit.size)
    digit = np.asarray(digit.resize((max(1, round(digit.width * scale)), max(1, round(digit.height * scale))),
                                    Image.LANCZOS), dtype=np.float32)
    canvas = np.zeros((28, 28), dtype=np.float32)
    mass = digit.sum() or 1.0
    centre_y = (digit.sum(1) * np.arange(digit.shape[0])).sum() / mass
    centre_x = (digit.sum(0) * np.arange(digit.shape[1])).sum() / mass
    top = int(np.clip(round(14 - centre_y), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(14 - centre_x), 0, 28 - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return torch.from_numpy(canvas.clip(0, 255).round().astype(np.uint8))


def top_k(model, image, k=3):
    """The ``k`` most probable digits for one uint8 28×28 image, as ``[(digit, probability), …]``."""
    inputs = image.reshape(1, -1).float().div(255)
    probabilities = predict_logits(model, inputs).softmax(1)[0]
    values, digits = probabilities.topk(k)
    return list(zip(digits.tolist(), values.tolist()))


def terminal_art(image):
    """The 28×28 image as 28 lines of text, two characters per pixel, darker ink as denser characters."""
    levels = (image.int() * len(ART_RAMP) // 256).tolist()
    return ["".join(ART_RAMP[level] * 2 for level in row) for row in levels]
