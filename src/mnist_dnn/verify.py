"""``make verify``: rerun the whole pipeline from this code and prove that it gives the committed results.

With the committed run's numerics, dvc.lock and metrics/ must come out byte for byte as committed. With other
numerics (another kind of processor, native kernels, a GPU), every test accuracy must lie within a tolerance derived
from seed noise. Always, one variant trained twice here must give the same bytes.
"""

import argparse
import json
import math
import subprocess
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from mnist_dnn import data, numerics, paths, training
from mnist_dnn.config import load_params
from mnist_dnn.device import select_device
from mnist_dnn.errors import UserError
from mnist_dnn.stage import run_stage

COMMITTED = "HEAD"
CHECKED = ["dvc.lock", "metrics/"]  # what must be byte-identical with the same numerics
# A run with other numerics is, for test accuracy, like a run with another seed: the difference of two such runs
# has a standard deviation of √2 σ (σ over the committed seeds); TOLERANCE_SIGMAS of those bound it.
TOLERANCE_SIGMAS = 3


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def committed_json(path):
    """The JSON of ``path`` as committed."""
    try:
        return json.loads(git("show", f"{COMMITTED}:{path}"))
    except (subprocess.CalledProcessError, ValueError) as err:
        raise UserError(f"{path}: no committed copy to compare with ({err})") from None


def tolerances(seed_noise):
    """Per variant, the test-accuracy tolerance for other numerics, from the seed statistics of ``seed_noise``."""
    try:
        return {row["variant"]: TOLERANCE_SIGMAS * math.sqrt(2) * row["std"] for row in seed_noise}
    except (KeyError, TypeError) as err:
        raise UserError(f"{paths.SEED_NOISE}: no seed statistics ({err}); run `make seed-noise`") from None


def model_hashes(lock):
    """Stage name → md5 of each train stage's model, from the text of a dvc.lock."""
    stages = YAML(typ="safe", pure=True).load(lock)["stages"]
    return {
        name: out["md5"]
        for name, stage in stages.items()
        if name.startswith("train@")
        for out in stage["outs"]
        if out["path"].endswith(".safetensors")
    }


def accuracy_rows(committed, computed, tolerance):
    """Per variant: committed and computed test accuracy, their difference and tolerance (pp), and whether it holds."""
    rows = []
    for name, before in committed.items():
        after = computed.get(name)
        difference = None if after is None else 100 * (after - before)
        allowed = 100 * tolerance.get(name, 0.0)
        rows.append((name, before, after, difference, allowed, difference is not None and abs(difference) <= allowed))
    return rows


def determinism(variant, splits, model_path):
    """Train ``variant`` once more, in this process, on ``splits`` (train and validation paths), and compare the file
    it saves with ``model_path`` byte for byte."""
    params, device = load_params(), select_device()
    spec = params.model_spec(variant)
    model, _ = training.train(spec, params.train, params.optimizer, *data.load_splits(*splits, device=device))
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp, "model.safetensors")
        spec.save(model, again, numerics.recorded(device))
        return again.read_bytes() == Path(model_path).read_bytes()


def main(args):
    if git("status", "--porcelain", "--", *CHECKED):
        raise UserError(f"{', '.join(CHECKED)}: changed since {COMMITTED}; commit or stash them first (git status)")
    committed_numerics = committed_json(paths.NUMERICS)
    committed_accuracy = committed_json(paths.TEST_METRICS)["accuracy"]
    committed_lock = git("show", f"{COMMITTED}:dvc.lock")
    here = numerics.fingerprint(select_device())
    print(f"committed run: {numerics.describe(next(iter(committed_numerics.values())))}")
    print(f"this machine:  {numerics.describe(here)}")
    subprocess.run(["dvc", "repro", "--force"], check=True)  # recomputed here, whatever the cache holds

    computed_numerics = json.loads(paths.NUMERICS.read_text())
    if computed_numerics == committed_numerics:
        changed = git("diff", "--stat", "--", *CHECKED)
        if changed:
            print(changed + git("diff", "--", "dvc.lock"))
            raise UserError("not bit-identical although the numerics are the committed run's: this code computes "
                            "other models or metrics than the committed ones (the diff above)")
        print("bit-identical: every model and metric byte for byte as committed")
        restore = False
    else:
        tolerance = tolerances(committed_json(paths.SEED_NOISE))
        rows = accuracy_rows(committed_accuracy, json.loads(paths.TEST_METRICS.read_text())["accuracy"], tolerance)
        before, after = model_hashes(committed_lock), model_hashes(Path("dvc.lock").read_text())
        print(f"{'variant':12} {'committed':>9} {'here':>7} {'diff pp':>7} {'tol pp':>6}  model md5 committed → here")
        for name, old, new, difference, allowed, _ in rows:
            new_text, diff_text = ("–", "–") if new is None else (f"{100 * new:.2f}", f"{difference:+.2f}")
            stage = f"train@{name}"
            print(f"{name:12} {100 * old:9.2f} {new_text:>7} {diff_text:>7} {allowed:6.2f}  "
                  f"{before.get(stage, '–')[:12]} → {after.get(stage, '–')[:12]}")
        outside = [row[0] for row in rows if not row[5]]
        if outside:
            raise UserError(f"not bit-identical, and beyond the tolerance for {', '.join(outside)}: this code "
                            "computes other results than the committed ones")
        print(f"not bit-identical: other numerics than the committed run; every test accuracy within "
              f"{TOLERANCE_SIGMAS} × √2 × its seed noise of the committed one")
        restore = True

    variant = args.determinism_variant
    if not determinism(variant, (paths.TRAIN_SPLIT, paths.VAL_SPLIT), paths.model_file(variant)):
        raise UserError(f"{variant} trained twice on this machine gave different bytes: training is not deterministic")
    print(f"deterministic: {variant} trained again here gives the same bytes")
    if restore:
        git("checkout", COMMITTED, "--", *CHECKED)
        print(f"restored the committed {' and '.join(CHECKED)}; models/ keeps this machine's models")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m mnist_dnn.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--determinism-variant", default="dnn_dropout", help="the variant trained twice")
    run_stage(main, parser.parse_args())
