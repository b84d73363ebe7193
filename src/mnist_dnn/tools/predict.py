"""`mnist-dnn predict`: the model to use, safe image loading, MNIST-style preprocessing, top-k predictions, terminal
art."""

import json
import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_dnn import paths
from mnist_dnn.errors import UserError, printable
from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.evaluation import predict_logits
from mnist_dnn.lecture.models import NAME_PATTERN, ModelSpec, load_as
from mnist_dnn.results import outputs
from mnist_dnn.stage import provenance

MAX_IMAGE_BYTES = 25 * 2**20  # a phone's photo as it saves one
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; the longer side is cut to WORKING_SIDE as it is read
WORKING_SIDE = 280  # pixels on the longer side that a larger image is preprocessed at: ten times MNIST's 28
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L")  # Pillow's 16-bit greyscale modes; it may also open such a PNG as I
MIN_CONTRAST = 32  # grey levels between ink and paper; less is a blank page, or JPEG noise on one
SIGNATURES = {rb"\x89PNG\r\n\x1a\n": "PNG", rb"\xff\xd8\xff": "JPEG", rb"GIF8[79]a": "GIF", rb"RIFF....WEBP": "WEBP",
              rb"BM": "BMP", rb"II\*\x00|MM\x00\*": "TIFF"}  # the first bytes of each format Pillow opens here
FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"
ART_RAMP = " .:-=+*#%@"


def load_image(path, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_PIXELS):
    """An image file (one of FORMAT_NAMES; its first frame) as an 8-bit grayscale PIL image, upright as its EXIF
    orientation says, at most WORKING_SIDE pixels on its longer side, checked before decoding; a UserError for
    anything else. A JPEG is decoded at 1/2 to 1/8 of its size where that is still twice WORKING_SIDE."""
    path, name = Path(path), printable(path)
    if not path.is_file():
        raise UserError(f"{name}: not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{name}: {size} bytes, over the {max_bytes}-byte limit for an image")
    with open(path, "rb") as f:
        head = f.read(12)
    formats = [fmt for signature, fmt in SIGNATURES.items() if re.match(signature, head, re.S)]
    if not formats:
        raise UserError(f"{name}: not a {FORMAT_NAMES} file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=formats) as image:
                width, height = image.size  # from the header: nothing is decoded yet
                if width * height > max_pixels:
                    raise UserError(f"{name}: {width}×{height} pixels, over the {max_pixels}-pixel limit for an image")
                image.draft(None, (2 * WORKING_SIDE, 2 * WORKING_SIDE))  # JPEG's DCT scaling; other formats: none
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                return to_grayscale(shrink(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UserError(f"{name}: refused as a possible decompression bomb ({err})") from None
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
            raise UserError(f"{name}: cannot decode the {formats[0]} image ({err})") from None


def shrink(image, side=WORKING_SIDE):
    """``image`` at most ``side`` pixels on its longer side (Pillow's thumbnail: whole-factor box reduction, then
    Lanczos), in a mode that resamples by value: a palette as RGB(A) or L, 16-bit levels as 32-bit."""
    if image.mode in ("P", "PA", "1"):
        image = image.convert("RGBA" if image.has_transparency_data else "L")
    elif image.mode in SIXTEEN_BIT_MODES:
        image = image.convert("I")
    image.thumbnail((side, side), Image.LANCZOS)
    return image


def to_grayscale(image):
    """``image`` as 8-bit grayscale: 16-bit levels scaled to 8 bits, and anything transparent composited on white."""
    if image.mode == "I":  # 16-bit levels, as Pillow opens a 16-bit PNG or shrink leaves one
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


def project_root(start="."):
    """The nearest folder at or above ``start`` that holds dvc.yaml, as a path relative to ``start``; ``start``
    itself outside a project (a model fetched with `dvc get`)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return Path(os.path.relpath(folder, here))
    return Path(start)


def best_variant(summary_path=paths.SUMMARY):
    """The variant with the highest reproduced accuracy in the committed summary."""
    rows = outputs.read_json(summary_path, outputs.Ranking, "dvc repro summarize")
    return max(rows, key=lambda row: row["reproduced_accuracy"])["variant"]


def test_image(index, seed, split=paths.TEST_SPLIT):
    """Test image ``index`` (or a seeded random one when ``index`` is None) of ``split``, and its label."""
    images, labels = data.load_split(split)
    if index is None:
        index = random.Random(seed).randrange(len(images))
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: the test set has images 0 to {len(images) - 1}")
    return index, images[index], int(labels[index])


def model_path(variant, root=Path(".")):
    """The model file of ``variant`` (paths.model_file) under ``root``, for a name that cannot lead out of it."""
    if not re.fullmatch(NAME_PATTERN, variant):
        raise UserError(f"{variant[:80]!r}: not a variant name (lowercase letters, digits and _)")
    return root / paths.model_file(variant)


def load_model(args, root):
    """The model ``args`` name, its spec and what it was trained with: a variant's is refused unless params.yaml
    trains it so; a ``--model`` file is checked against its own record only, since it may come from elsewhere."""
    if args.model:
        model, spec, record = ModelSpec.load_with_record(args.model)
        if args.variant and spec.variant != args.variant:
            raise UserError(f"{args.model}: holds {spec.variant}, not {args.variant[:80]!r} as --variant says")
        return model, spec, record["trained_with"]
    variant = args.variant or best_variant(root / paths.SUMMARY)
    path, params = model_path(variant, root), load_params(root / "params.yaml", training=False)
    spec = params.model_spec(variant)
    model, record = load_as(path, spec, params.trained_with(variant))
    return model, spec, record["trained_with"]


def run_predict(args):
    """Predict one image as ``args`` ask, and print the result as text or JSON; run from the project's root or any
    folder below it."""
    for option in ("variant", "model", "image"):
        if getattr(args, option) == "":
            raise UserError(f"--{option}: an empty value names nothing")
    root = project_root()
    model, spec, trained_with = load_model(args, root)
    if args.image is not None:
        source, image, label = args.image, to_mnist(load_image(args.image)), None
    else:
        index, image, label = test_image(args.index, args.seed, root / paths.TEST_SPLIT)
        source = f"test image {index}"
    top3 = top_k(model, image, k=3)
    result = {
        "variant": spec.variant,
        "trained_with": trained_with,
        "source": source,
        "label": label,
        "prediction": top3[0][0],
        "top3": [{"digit": digit, "probability": p} for digit, p in top3],
        "image": terminal_art(image),
    }
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return
    print(f"variant:    {result['variant']}")
    if trained_with is not None:
        print(f"trained:    {provenance.describe(trained_with)}")
    print(f"image:      {source}")
    if label is not None:
        print(f"label:      {label}")
    print(f"prediction: {result['prediction']}")
    print("top 3:      " + ", ".join(f"{digit} ({p:.2%})" for digit, p in top3))
    print("\n".join(result["image"]))
