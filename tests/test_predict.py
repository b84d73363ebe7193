import gzip
import json
import math
import random
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile
from torch import nn

from helpers import REPO, edit_yaml
from mnist_dnn import paths
from mnist_dnn.cli import main
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.data import save_split
from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.tools import predict

SPEC = ModelSpec(variant="tiny", hidden=(16,), init="xavier_uniform", bias_init="pytorch")
TINY = paths.model_file("tiny")
LABELS = [7, 2, 1, 0, 4]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- helpers ----------------------------------------------------------------------------------------------


def noise(width, height, mode="RGB"):
    """A seeded random-noise image: it compresses badly, so its files are large and detailed."""
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(2) if channels == 1 else pixels, mode)


def save(image, path, fmt):
    image.save(path, fmt)
    return path


def draw_digit(paper, ink):
    """A thick ring, like a 0, off-centre on a 300×400 (width×height) canvas, in grayscale."""
    image = Image.new("RGB", (300, 400), paper)
    ImageDraw.Draw(image).ellipse((40, 60, 160, 300), outline=ink, width=25)  # 121 wide, 241 tall
    return image.convert("L")


def centre_of_mass(image):
    weights = image.double()
    rows, cols = torch.arange(28, dtype=torch.double), torch.arange(28, dtype=torch.double)
    total = weights.sum()
    return (weights.sum(1) * rows).sum() / total, (weights.sum(0) * cols).sum() / total


def expect_cli_error(capsys, *args):
    """Run ``mnist-dnn predict *args``; check it fails as a user error should, and return stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *args])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    return err


def predict_json(capsys, *args):
    main(["predict", *args, "--json"])
    return json.loads(capsys.readouterr().out)


# ---- bad image files: each maker writes one (and may patch a limit), returning its path -------------------


def directory(tmp_path, monkeypatch):
    path = tmp_path / "folder.png"
    path.mkdir()
    return path


def missing(tmp_path, monkeypatch):
    return tmp_path / "missing.png"


def too_large(tmp_path, monkeypatch):
    # load_image's default limit is bound when it is defined, so pass a small limit through instead.
    monkeypatch.setattr(predict, "load_image", partial(predict.load_image, max_bytes=100))
    return save(noise(32, 32), tmp_path / "big.png", "PNG")


def text_file(tmp_path, monkeypatch):
    path = tmp_path / "digit.png"
    path.write_text("this is not an image\n")
    return path


def ico(tmp_path, monkeypatch):
    return save(noise(32, 32), tmp_path / "digit.ico", "ICO")


def png_signature_then_garbage(tmp_path, monkeypatch):
    path = tmp_path / "garbage.png"
    path.write_bytes(PNG_SIGNATURE + bytes(range(256)) * 4)
    return path


def truncated(fmt):
    def make(tmp_path, monkeypatch):
        path = save(noise(128, 128), tmp_path / f"truncated.{fmt.lower()}", fmt)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    make.__name__ = f"truncated_{fmt.lower()}"
    return make


def bomb(side):
    def make(tmp_path, monkeypatch):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 pixels, raises above 2000
        return save(noise(side, side), tmp_path / f"bomb{side}.png", "PNG")

    make.__name__ = f"bomb_{side}x{side}"
    return make


REFUSED_BEFORE_DECODING = [
    (directory, "not a regular file"),
    (missing, "not a regular file"),
    (too_large, "over the 100-byte limit"),
    (text_file, "not a PNG, JPEG, GIF, WebP, BMP or TIFF file"),
    (ico, "not a PNG, JPEG, GIF, WebP, BMP or TIFF file"),
]
REFUSED_WHILE_DECODING = [
    (png_signature_then_garbage, "cannot decode"),
    (truncated("PNG"), "cannot decode"),
    (truncated("JPEG"), "cannot decode"),
    (bomb(50), "decompression bomb"),  # 2500 pixels: Pillow raises DecompressionBombError
    (bomb(40), "decompression bomb"),  # 1600 pixels: Pillow only warns, and the loader must still refuse
]
BAD_IMAGES = [pytest.param(make, fragment, id=make.__name__)
              for make, fragment in REFUSED_BEFORE_DECODING + REFUSED_WHILE_DECODING]


@pytest.mark.parametrize("make, fragment", BAD_IMAGES)
def test_load_image_refuses_bad_files_in_one_line(tmp_path, monkeypatch, make, fragment):
    path = make(tmp_path, monkeypatch)
    with pytest.raises(UserError) as error:
        predict.load_image(path)
    message = str(error.value)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("make, fragment", [pytest.param(m, f, id=m.__name__) for m, f in REFUSED_BEFORE_DECODING])
def test_load_image_refuses_before_handing_the_file_to_pillow(tmp_path, monkeypatch, make, fragment):
    path = make(tmp_path, monkeypatch)

    def refuse_to_decode(*args, **kwargs):
        raise AssertionError("the file reached Pillow")

    monkeypatch.setattr(Image, "open", refuse_to_decode)
    with pytest.raises(UserError, match=fragment):
        predict.load_image(path)


@pytest.mark.parametrize("make, fragment", BAD_IMAGES)
def test_cli_reports_bad_image_as_one_error_line(tmp_path, monkeypatch, capsys, model_file, make, fragment):
    monkeypatch.chdir(tmp_path)  # no metrics/summary.json here: --model alone must be enough
    path = make(tmp_path, monkeypatch)
    err = expect_cli_error(capsys, "--image", str(path), "--model", str(model_file[1]))
    assert str(path) in err
    assert fragment in err


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("JPEG", "RGB"), ("JPEG", "L")])
def test_load_image_reads_png_and_jpeg_of_any_size_as_grayscale(tmp_path, fmt, mode):
    path = save(noise(37, 53, mode), tmp_path / f"digit.{fmt.lower()}", fmt)
    image = predict.load_image(path)
    assert image.mode == "L"
    assert image.size == (37, 53)


# ---- to_mnist ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "paper, ink",
    [("white", "black"), ("black", "white"), ("#c8c8c8", "#282828")],
    ids=["dark_on_light", "light_on_dark", "grey_paper"],
)
def test_to_mnist_fits_and_centres_the_digit_light_on_dark(paper, ink):
    result = predict.to_mnist(draw_digit(paper, ink))
    assert result.shape == (28, 28)
    assert result.dtype == torch.uint8
    frame = torch.ones(28, 28, dtype=torch.bool)
    frame[2:-2, 2:-2] = False
    assert (result[frame] == 0).all()
    assert result.max() > 200  # bright ink
    # The ring, ~2 px thick around a ~10×20 box, has well under 150 bright pixels; paper taken for ink fills the box.
    assert (result > 127).sum() < 150
    rows = torch.nonzero(result.any(1)).flatten()
    cols = torch.nonzero(result.any(0)).flatten()
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert height <= 20 and width <= 20  # MNIST fits the digit in a 20×20 box
    assert max(height, width) >= 18
    centre_y, centre_x = centre_of_mass(result)
    assert math.dist((centre_y, centre_x), (14, 14)) <= 1.5


@pytest.mark.parametrize("paper, ink", [("black", "white"), ("#c8c8c8", "#282828")], ids=["inverted", "grey_paper"])
def test_to_mnist_gives_the_same_digit_whatever_the_paper_and_polarity(paper, ink):
    dark_on_light = predict.to_mnist(draw_digit("white", "black")).int()
    other = predict.to_mnist(draw_digit(paper, ink)).int()
    assert (dark_on_light - other).abs().max() <= 1


@pytest.mark.parametrize("colour", [0, 128, 255])
def test_to_mnist_finds_no_digit_in_a_blank_image(colour):
    with pytest.raises(UserError, match="^no digit found"):
        predict.to_mnist(Image.new("L", (300, 400), colour))


def test_to_mnist_finds_no_digit_in_faint_noise_on_blank_paper():
    paper = np.random.default_rng(0).integers(235, 256, (400, 300), dtype=np.uint8)  # JPEG-like noise, no ink
    with pytest.raises(UserError, match="^no digit found"):
        predict.to_mnist(Image.fromarray(paper))


# ---- top_k and terminal_art -------------------------------------------------------------------------------


def test_top_k_ranks_digits_by_softmax_probability():
    bias = [0.0, 2.0, 0.0, 4.0, 0.0, -1.0, 0.0, 0.0, 3.0, 0.5]  # favours 3, then 8, then 1
    model = nn.Linear(784, 10)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor(bias))
    image = torch.randint(0, 256, (28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    total = sum(math.exp(b) for b in bias)
    expected = [(digit, math.exp(bias[digit]) / total) for digit in (3, 8, 1)]

    result = predict.top_k(model, image, k=3)

    assert [digit for digit, _ in result] == [3, 8, 1]
    assert [p for _, p in result] == pytest.approx([p for _, p in expected], rel=1e-5)
    assert result[0][1] > result[1][1] > result[2][1]


def test_terminal_art_draws_blank_as_spaces_and_full_ink_as_at_signs():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[:, 14:] = 255
    lines = predict.terminal_art(image)
    assert len(lines) == 28
    assert all(line == " " * 28 + "@" * 28 for line in lines)


def test_terminal_art_uses_denser_characters_for_brighter_pixels():
    ramp = " .:-=+*#%@"
    gradient = torch.linspace(0, 255, 28 * 28).round().to(torch.uint8).reshape(28, 28)
    characters = "".join(predict.terminal_art(gradient))[::2]  # two characters per pixel
    positions = [ramp.index(c) for c in characters]
    assert positions == sorted(positions)
    assert set(characters) == set(ramp)


# ---- the mnist-dnn predict command ------------------------------------------------------------------------


def write_params(root, changes=()):
    """params.yaml in ``root``: this project's, with one variant, tiny (SPEC), and ``changes`` (dotted key → value)."""
    edits = {"variants": {"tiny": {"hidden": [16], "init": "xavier_uniform", "bias_init": "pytorch"}},
             "lecture_accuracy": {}, "lecture_cost": {}, "optimizer_study.variant": "tiny", **dict(changes)}
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    edit_yaml(root / "params.yaml", edits)
    return load_params(root / "params.yaml")


@pytest.fixture
def model_file(tmp_path):
    """The model file of variant tiny in ``tmp_path``, trained (its record says) with the params.yaml beside it."""
    model = SPEC.build()
    path = tmp_path / "models" / "tiny.safetensors"
    path.parent.mkdir()
    SPEC.save(model, path, trained_with=write_params(tmp_path).trained_with("tiny"))
    return model, path


@pytest.fixture
def workdir(tmp_path, monkeypatch, model_file):
    """A working directory with a 5-image test split, the model of variant tiny and a summary naming it best."""
    monkeypatch.chdir(tmp_path)
    images = torch.randint(0, 256, (len(LABELS), 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    (tmp_path / "data/prepared").mkdir(parents=True)
    save_split(tmp_path / "data/prepared/test.safetensors", images, torch.tensor(LABELS, dtype=torch.uint8))
    summary = [{"variant": "other", "reproduced_accuracy": 0.5}, {"variant": "tiny", "reproduced_accuracy": 0.9}]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/summary.json").write_text(json.dumps(summary))
    return images, model_file[0]


def test_predict_json_of_a_test_image(workdir, capsys):
    images, model = workdir
    result = predict_json(capsys, "--index", "2")

    assert result["variant"] == "tiny"
    assert result["source"] == "test image 2"
    assert result["label"] == LABELS[2]
    probabilities = [entry["probability"] for entry in result["top3"]]
    assert len(probabilities) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-6
    assert result["prediction"] == result["top3"][0]["digit"]
    with torch.no_grad():
        expected = model(images[2].reshape(1, -1).float() / 255).argmax().item()
    assert result["prediction"] == expected
    assert len(result["image"]) == 28
    assert all(isinstance(line, str) and len(line) == 56 for line in result["image"])


def test_predict_text_of_a_test_image(workdir, capsys):
    main(["predict", "--index", "2"])
    lines = capsys.readouterr().out.splitlines()
    text = "\n".join(lines)
    assert f"label:      {LABELS[2]}" in text
    assert "prediction:" in text
    assert "top 3:" in text
    digest = load_params().trained_with("tiny")["sha256"]
    assert lines[1] == f"trained:    adam lr 0.001, 15 epochs, batch 100, seed 777 (params {digest[:12]})"
    assert len(lines) == 6 + 28  # variant, trained, image, label, prediction, top 3; then the art
    assert all(len(line) == 56 for line in lines[-28:])


def test_predict_random_is_seeded(workdir, capsys):
    seeds = [0, 1]
    expected = [random.Random(seed).randrange(len(LABELS)) for seed in seeds]
    assert expected[0] != expected[1]  # these seeds pick different images, so the check below can tell them apart
    for seed, index in zip(seeds, expected):
        first = predict_json(capsys, "--seed", str(seed))
        second = predict_json(capsys, "--seed", str(seed))
        assert first["source"] == second["source"] == f"test image {index}"
        assert first["label"] == LABELS[index]


@pytest.mark.parametrize("args, remove, fragment", [
    pytest.param(["--index", "99"], None, "--index 99", id="index_out_of_range"),
    pytest.param(["--variant", "nope"], None, "unknown variant 'nope' (params.yaml variants: tiny)",
                 id="unknown_variant"),
    pytest.param(["--variant", "../../x"], None, "'../../x': not a variant name", id="variant_leaving_models"),
    pytest.param(["--index", "0"], "metrics/summary.json", "metrics/summary.json", id="no_summary"),
    pytest.param(["--index", "0"], "data/prepared/test.safetensors", "data/prepared/test.safetensors",
                 id="no_test_split"),
])
def test_predict_reports_user_errors_in_one_line(workdir, capsys, tmp_path, args, remove, fragment):
    if remove:
        (tmp_path / remove).unlink()
    err = expect_cli_error(capsys, *args)
    assert fragment in err


def test_predict_own_image_has_no_label(workdir, tmp_path, capsys):
    path = tmp_path / "my digit.png"
    draw_digit("white", "black").save(path)
    main(["predict", "--image", str(path)])
    out = capsys.readouterr().out
    assert f"image:      {path}" in out
    assert "prediction:" in out
    assert "label:" not in out
    result = predict_json(capsys, "--image", str(path))
    assert result["source"] == str(path)
    assert result["label"] is None
    assert result["variant"] == "tiny"


def test_predict_refuses_a_blank_image_with_exit_2(workdir, tmp_path, capsys):
    path = save(Image.new("RGB", (300, 400), "white"), tmp_path / "blank.png", "PNG")
    err = expect_cli_error(capsys, "--image", str(path))
    assert err == "error: no digit found: the image is blank, or of one flat colour\n"


# ---- honest images of real digits: the same 28×28 input however the file encodes them ---------------------

MNIST_TEST_IMAGES = Path(__file__).resolve().parents[2] / "shared/mnist/t10k-images-idx3-ubyte.gz"


def mnist_test_digits(n=50):
    """The first ``n`` MNIST test digits as uint8 arrays, light on dark, read from ../shared/mnist."""
    assert MNIST_TEST_IMAGES.exists(), f"{MNIST_TEST_IMAGES} missing: put the MNIST files in ../shared/mnist"
    with gzip.open(MNIST_TEST_IMAGES) as f:
        data = f.read(16 + n * 28 * 28)
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)


def black_ink_on_white(digit):
    return Image.fromarray(255 - digit)


def black_ink_on_transparent(digit, mode):
    """The digit as black ink whose opacity is the digit's intensity, on a fully transparent canvas."""
    black = np.zeros_like(digit)
    bands = [black, digit] if mode == "LA" else [black, black, black, digit]
    return Image.fromarray(np.stack(bands, axis=-1), mode)


def sixteen_bit(digit):
    """The black-on-white digit in 16-bit greyscale: each 8-bit level v is 257·v (255 → 65535)."""
    return Image.fromarray((255 - digit.astype(np.uint16)) * 257)


@pytest.mark.parametrize("encode", [partial(black_ink_on_transparent, mode="RGBA"),
                                    partial(black_ink_on_transparent, mode="LA"), sixteen_bit],
                         ids=["rgba_ink_on_transparent", "la_ink_on_transparent", "16_bit_greyscale"])
def test_an_honest_encoding_of_a_digit_gives_the_same_input_as_8_bits(tmp_path, encode):
    for i, digit in enumerate(mnist_test_digits()):
        reference = predict.to_mnist(predict.load_image(save(black_ink_on_white(digit), tmp_path / "8bit.png", "PNG")))
        path = save(encode(digit), tmp_path / f"{i}.png", "PNG")
        with Image.open(path) as image:
            assert image.mode in ("RGBA", "LA", "I;16")  # the file really is what this test says it is
        result = predict.to_mnist(predict.load_image(path))
        assert (result.int() - reference.int()).abs().max() <= 1, f"test digit {i}"


# ---- memory: every image predict accepts is decoded within a fixed budget ---------------------------------


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = save(Image.new("L", (9000, 6000), 255), tmp_path / "huge.png", "PNG")  # 54 Mpx of white: a small file
    assert path.stat().st_size < predict.MAX_IMAGE_BYTES and 9000 * 6000 < Image.MAX_IMAGE_PIXELS

    def refuse_to_decode(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    with pytest.raises(UserError) as error:
        predict.load_image(path)
    assert str(error.value) == f"{path}: 9000×6000 pixels, over the {predict.MAX_PIXELS}-pixel limit for an image"


@pytest.mark.slow
def test_the_largest_image_accepted_is_predicted_within_the_memory_cap(tmp_path, model_file, run_capped):
    side = math.isqrt(predict.MAX_PIXELS)
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ring = (side // 4, side // 8, 3 * side // 4, 7 * side // 8)
    ImageDraw.Draw(image).ellipse(ring, outline="black", width=side // 10)
    path = save(image, tmp_path / "large.png", "PNG")
    code = "from mnist_dnn.cli import main; main()"
    result = run_capped(code, "predict", "--model", model_file[1], "--image", path, "--json")
    assert result.returncode == 0, result.stderr
    art = json.loads(result.stdout)["image"]
    assert art[0].strip() == "" and art[14].strip() != ""  # the ring, drawn in the middle of the canvas


def test_a_crafted_summary_cannot_point_predict_outside_models(workdir, tmp_path, capsys):
    summary = [{"variant": "../../../etc/x", "reproduced_accuracy": 1.0}]
    (tmp_path / "metrics/summary.json").write_text(json.dumps(summary))
    err = expect_cli_error(capsys, "--index", "0")
    assert "0.variant: '../../../etc/x' is not a name" in err


# ---- one input, one answer --------------------------------------------------------------------------------


def test_a_saved_28x28_test_digit_is_the_same_input_as_the_digit_itself(tmp_path):
    for i, digit in enumerate(mnist_test_digits(1000)):
        path = save(Image.fromarray(digit), tmp_path / "digit.png", "PNG")
        result = predict.to_mnist(predict.load_image(path))
        assert torch.equal(result, torch.from_numpy(digit.copy())), f"test digit {i}"


@pytest.fixture
def real_digits(tmp_path, monkeypatch, model_file):
    """A working directory whose test split is the first 20 MNIST test digits; their labels are made up."""
    monkeypatch.chdir(tmp_path)
    digits = mnist_test_digits(20)
    (tmp_path / "data/prepared").mkdir(parents=True)
    save_split(tmp_path / "data/prepared/test.safetensors", torch.from_numpy(digits.copy()),
               torch.zeros(len(digits), dtype=torch.uint8))
    return digits


def test_predict_image_of_a_saved_test_digit_answers_as_predict_index(real_digits, model_file, tmp_path, capsys):
    for i in (0, 7, 19):
        path = save(Image.fromarray(real_digits[i]), tmp_path / f"test-{i}.png", "PNG")
        by_image = predict_json(capsys, "--model", str(model_file[1]), "--image", str(path))
        by_index = predict_json(capsys, "--model", str(model_file[1]), "--index", str(i))
        assert by_image["top3"] == by_index["top3"] and by_image["image"] == by_index["image"]


def exif_rotated(image, orientation):
    """``image`` stored turned so that EXIF ``orientation`` (6: turn 90° clockwise, 8: counter-clockwise, 3: 180°)
    shows it upright, and that tag."""
    stored = image.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
                              3: Image.Transpose.ROTATE_180}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return stored, exif


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(tmp_path, orientation, fmt):
    upright = black_ink_on_white(mnist_test_digits(8)[7]).resize((140, 140), Image.Resampling.NEAREST)  # a 9
    stored, exif = exif_rotated(upright, orientation)
    path = tmp_path / f"phone.{fmt.lower()}"
    stored.save(path, fmt, exif=exif)
    expected = predict.to_mnist(upright).int()
    assert (predict.to_mnist(Image.open(path).convert("L")).int() - expected).abs().max() > 100  # really turned
    assert (predict.to_mnist(predict.load_image(path)).int() - expected).abs().max() <= (1 if fmt == "PNG" else 60)


def frames(digit, other):
    """Two frames: ``digit`` black on white, then ``other``: a reader that takes the second would see another digit."""
    return black_ink_on_white(digit).resize((140, 140)), black_ink_on_white(other).resize((140, 140))


@pytest.mark.parametrize("fmt, mode", [("GIF", "P"), ("WEBP", "RGB"), ("BMP", "L"), ("TIFF", "L"), ("TIFF", "I;16")])
def test_gif_webp_bmp_and_tiff_give_their_first_frame(tmp_path, fmt, mode):
    seven, two = mnist_test_digits(2)
    first, second = frames(seven, two)
    path = tmp_path / f"digit.{fmt.lower()}"
    converted = [Image.fromarray(np.asarray(frame, "<u2") * 257) if mode == "I;16" else frame.convert(mode)
                 for frame in (first, second)]  # 16 bits: each 8-bit level v as 257·v
    options = {"lossless": True} if fmt == "WEBP" else {}
    layered = fmt != "BMP" and mode != "I;16"  # BMP has one frame; Pillow writes a 16-bit TIFF's first page only
    converted[0].save(path, fmt, save_all=layered, append_images=converted[1:] if layered else [], **options)
    with Image.open(path) as image:
        assert image.format == fmt and getattr(image, "n_frames", 1) == (2 if layered else 1)
    expected = predict.to_mnist(first).int()
    assert (predict.to_mnist(predict.load_image(path)).int() - expected).abs().max() <= 2
    assert (predict.to_mnist(second).int() - expected).abs().max() > 100


def phone_photo(digit, size=(6000, 4000)):
    """``digit`` as a phone would photograph it on paper: ``size`` RGB, dark ink ~2,800 px tall on warm paper lit
    from one side, with sensor noise."""
    width, height = size
    ink = np.asarray(Image.fromarray(digit).resize((2800, 2800), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    light = np.linspace(0.85, 1.0, width, dtype=np.float32)[None, :]  # brighter towards the window
    paper = np.empty((height, width), dtype=np.float32)
    paper[:] = 225 * light
    top, left = (height - 2800) // 2, (width - 2800) // 2
    paper[top : top + 2800, left : left + 2800] *= 1 - 0.8 * ink
    paper += np.random.default_rng(0).normal(0, 4, paper.shape).astype(np.float32)
    grey = paper.clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey, (grey * 0.97).astype(np.uint8), (grey * 0.9).astype(np.uint8)], -1))


@pytest.mark.e2e
def test_a_6000x4000_jpeg_photo_of_a_digit_predicts_its_label_as_its_280_px_version_within_the_cap(
        trained_project, tmp_path, run_capped):
    digits, labels = mnist_test_digits(10), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    model = trained_project[0] / paths.model_file("nn_xavier")
    code = "from mnist_dnn.cli import main; main()"

    def predicted(path):
        result = run_capped(code, "predict", "--model", model, "--image", path, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["prediction"]

    for i in (0, 3):  # a 7 and a 0, each predicted right at 28×28 by the small run's nn_xavier
        photo = phone_photo(digits[i])
        big = tmp_path / f"photo-{i}.jpg"
        photo.save(big, "JPEG", quality=90)
        assert big.stat().st_size < predict.MAX_IMAGE_BYTES
        small = save(photo.resize((420, 280), Image.Resampling.LANCZOS), tmp_path / f"small-{i}.png", "PNG")
        assert predicted(big) == predicted(small) == labels[i]


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_an_exif_orientation_out_of_range_is_ignored(tmp_path, orientation):
    image = black_ink_on_white(mnist_test_digits(1)[0])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "odd.png"
    image.save(path, "PNG", exif=exif)
    assert torch.equal(predict.to_mnist(predict.load_image(path)), predict.to_mnist(image))


@pytest.mark.parametrize("option", ["--image", "--model", "--variant"])
def test_an_empty_option_value_is_refused(workdir, capsys, option):
    err = expect_cli_error(capsys, option, "")
    assert err == f"error: {option}: an empty value names nothing\n"


def test_a_missing_image_file_is_refused(workdir, capsys, tmp_path):
    err = expect_cli_error(capsys, "--image", str(tmp_path / "nowhere.png"))
    assert err == f"error: {tmp_path / 'nowhere.png'}: not a regular file\n"


def test_a_model_of_another_variant_than_variant_says_is_refused(workdir, capsys, model_file):
    err = expect_cli_error(capsys, "--variant", "softmax", "--model", str(model_file[1]), "--index", "0")
    assert err == f"error: {model_file[1]}: holds tiny, not 'softmax' as --variant says\n"
    assert predict_json(capsys, "--variant", "tiny", "--model", str(model_file[1]), "--index", "0")["variant"] == "tiny"


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "text"])
def test_finite_weights_whose_outputs_overflow_are_one_line(workdir, capsys, tmp_path, json_output):
    model = SPEC.build()
    with torch.no_grad():
        model[0].weight.fill_(3e38)  # finite, but a sum of 784 of them is not
    path = tmp_path / paths.model_file("huge")
    SPEC.save(model, path)
    err = expect_cli_error(capsys, "--model", str(path), "--index", "1", *(["--json"] if json_output else []))
    assert err == "error: the model's outputs overflow float32 (its weights are finite but too large)\n"


# ---- provenance: a variant's model is refused unless params.yaml trains it so ---------------------------------


@pytest.mark.parametrize("key, value, recorded, expected", [
    ("optimizer.lr", 0.003, "0.001", "0.003"),
    ("train.epochs", 2, "15", "2"),
    ("train.seed", 1, "777", "1"),
    ("optimizer.betas", [0.8, 0.9], "none", "[0.8, 0.9]"),
    ("optimizer.name", "sgd", '"adam"', '"sgd"'),
])
def test_predict_refuses_a_variant_trained_with_other_params_naming_the_key(workdir, tmp_path, capsys, key, value,
                                                                              recorded, expected):
    write_params(tmp_path, {key: value})
    err = expect_cli_error(capsys, "--variant", "tiny", "--index", "0")
    assert err == (f"error: {TINY}: trained with {key} {recorded}, but params.yaml has {expected}; "
                   "run `dvc repro --force train@tiny`\n")
    assert expect_cli_error(capsys, "--index", "0") == err  # the best variant of the summary, likewise


def test_predict_with_a_model_file_reports_its_own_record_rather_than_refusing_it(workdir, tmp_path, capsys,
                                                                                  model_file):
    recorded = load_params().trained_with("tiny")
    write_params(tmp_path, {"optimizer.lr": 0.003})
    result = predict_json(capsys, "--model", str(model_file[1]), "--index", "0")
    assert result["trained_with"] == recorded


def test_a_model_saved_without_a_training_record_is_refused_as_a_variant_shown_as_a_file(workdir, capsys,
                                                                                        model_file):
    SPEC.save(model_file[0], model_file[1])  # saved outside the stages: trained_with is null
    err = expect_cli_error(capsys, "--variant", "tiny", "--index", "0")
    assert err == f"error: {TINY}: records no training params; run `dvc repro --force train@tiny`\n"
    assert predict_json(capsys, "--model", str(model_file[1]), "--index", "0")["trained_with"] is None


def test_a_record_that_does_not_match_its_digest_is_refused(workdir, tmp_path, capsys, model_file):
    forged = load_params().trained_with("tiny")
    forged["params"]["optimizer"]["lr"] = 0.003  # values edited, digest kept
    SPEC.save(model_file[0], model_file[1], trained_with=forged)
    err = expect_cli_error(capsys, "--variant", "tiny", "--index", "0")
    assert err == (f"error: {TINY}: not a mnist_dnn model file (metadata trained_with does not match "
                   "its sha256)\n")


@pytest.mark.parametrize("subfolder", ["src", "metrics/train/deep"])
def test_predict_works_from_a_folder_below_the_project_root(workdir, tmp_path, capsys, monkeypatch, subfolder):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    digit = tmp_path / "digit.png"
    draw_digit("white", "black").save(digit)
    at_root = [predict_json(capsys, "--variant", "tiny", "--index", "3"), predict_json(capsys, "--image", "digit.png")]
    (tmp_path / subfolder).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path / subfolder)
    image = str(Path("../" * len(Path(subfolder).parts), "digit.png"))  # --image stays relative to the folder
    below = [predict_json(capsys, "--variant", "tiny", "--index", "3"), predict_json(capsys, "--image", image)]
    assert below[0] == at_root[0]
    assert below[1] == at_root[1] | {"source": image}


def test_predict_outside_a_project_names_the_file_it_looked_for(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    err = expect_cli_error(capsys, "--variant", "tiny", "--index", "0")
    assert err.startswith(f"error: {TINY}: no such model file")


def test_an_image_path_with_a_newline_is_named_on_one_line(tmp_path, capsys, workdir):
    path = tmp_path / "my\ndigit.png"
    path.write_text("not an image")
    err = expect_cli_error(capsys, "--image", str(path))
    assert "my\\ndigit.png: not a PNG, JPEG" in err
