"""The README's picture: the first screen of the report in headless Chromium, as wide as its main table,
with the SHA-256 of the page it shows in its PNG metadata (mnist_dnn.tools.agreement checks it against the committed
page)."""

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, PngImagePlugin

from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage

SCREEN = (1200, 440)  # CSS pixels: the title, the links and the main table, as wide as that table needs
SOURCE_KEY = "mnist-dnn:source-sha256"  # the PNG text chunk that names the page shown
PICTURE = Path("docs/report.png")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_digest(picture):
    """The SHA-256 of the page that the picture at ``picture`` shows, as its metadata records it; None if none."""
    with Image.open(picture) as image:
        return image.text.get(SOURCE_KEY)


def take(page, picture, chromium="chromium"):
    """Write the first screen of the HTML file ``page`` as headless ``chromium`` draws it to the PNG ``picture``."""
    if shutil.which(chromium) is None:
        raise UserError(f"{chromium} not found: `make browser` installs it (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp, "screen.png")
        width, height = SCREEN
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}", f"--screenshot={shot}",
                        Path(page).resolve().as_uri()], check=True, capture_output=True, timeout=120)
        metadata = PngImagePlugin.PngInfo()
        metadata.add_text(SOURCE_KEY, sha256(page))
        with Image.open(shot) as image, files.atomic_outputs(picture) as (out,):
            image.save(out, format="PNG", pnginfo=metadata, optimize=True)


def main(args):
    take(args.page, args.picture)
    print(f"{args.picture}: the first screen of {args.page}")


if __name__ == "__main__":
    parser = ArgumentParser(prog="python -m mnist_dnn.results.report_picture",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", default=paths.REPORT, help="the report")
    parser.add_argument("picture", nargs="?", default=PICTURE, help="the PNG to write")
    run_stage(main, parser.parse_args())
