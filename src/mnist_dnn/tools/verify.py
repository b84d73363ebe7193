"""``make verify``: rerun the pipeline from this code (`mnist-dnn repro --force`) and prove that it gives the committed
results.

With the committed run's numerics (its CPU vendor included) the whole pipeline runs, and it must give dvc.lock and
metrics/ byte for byte as committed, or the code changed: it fails. With other numerics (another CPU vendor, native
kernels, a GPU) no byte can match, and what is compared is each test accuracy, within a tolerance derived from seed
noise: so only the stages up to them run. Always, one variant trained again here (under another thread count, with
the portable numerics) must give the same bytes.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from ruamel.yaml import YAML

from mnist_dnn import paths
from mnist_dnn.errors import UserError, one_line
from mnist_dnn.lecture import data, training
from mnist_dnn.lecture.config import load_params
from mnist_dnn.stage import numerics
from mnist_dnn.stage.device import select_device
from mnist_dnn.stage.runtime import ArgumentParser, run_stage
from mnist_dnn.tools import parallel

COMMITTED = "HEAD"
CHECKED = ["dvc.lock", "metrics/"]  # what must be byte-identical with the same numerics
# A run with other numerics is, for test accuracy, like a run with another seed: the difference of two such runs
# has a standard deviation of √2 σ (σ over the committed seeds); TOLERANCE_SIGMAS of those bound it.
TOLERANCE_SIGMAS = 3
ACCURACY_STAGE = "summarize"  # writes metrics/test.json from the train and evaluate stages of every variant


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


def first(numerics_by_variant):
    """The numerics of the first variant of a ``metrics/numerics.json``, or {} for an empty one."""
    return next(iter(numerics_by_variant.values()), {})


def difference(committed, computed):
    """Why the numerics of a rerun (variant → fingerprint, as in metrics/numerics.json) are not the committed run's,
    in words; None where they are the same."""
    if computed == committed:
        return None
    before, after = first(committed), first(computed)
    if "cpu_vendor" in before and "cpu_vendor" in after and before["cpu_vendor"] != after["cpu_vendor"]:
        return f"another CPU vendor ({after['cpu_vendor']}) than the committed run ({before['cpu_vendor']})"
    keys = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    changes = ", ".join(f"{key} {before.get(key, '–')} → {after.get(key, '–')}" for key in keys) or "per variant"
    return f"other numerics than the committed run ({changes})"


def vendor_note(committed, here):
    """Whether this machine's CPU vendor is the committed run's, in a sentence."""
    before, after = committed.get("cpu_vendor", "unknown"), here.get("cpu_vendor", here["device"])
    if before == after:
        return f"this machine's CPU vendor is the committed run's ({before})"
    return f"this machine's CPU vendor ({after}) is not the committed run's ({before})"


def other_threads(threads):
    """A thread count other than ``threads`` for the determinism rerun: 1, or 2 where the run used one."""
    return 2 if threads == 1 else 1


def determinism(variant, splits, model_path, threads):
    """Train ``variant`` once more, in this process, under ``threads`` CPU threads (None: as they are), on ``splits``
    (train and validation paths), and compare the file it saves with ``model_path`` byte for byte."""
    params, device = load_params(), select_device()
    spec = params.model_spec(variant)
    if threads:
        torch.set_num_threads(threads)
    model, _ = training.train(spec, params.train, params.optimizer, data.load_splits(*splits, device=device))
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp, "model.safetensors")
        spec.save(model, again, numerics.recorded(device), params.trained_with(variant))
        return again.read_bytes() == Path(model_path).read_bytes()


def contradicted_outputs():
    """The outputs committed to git (`cache: false`) whose content is not what the committed dvc.lock records for
    them (DVC's own status: "modified"). DVC-cached outputs are the workspace's, not the commit's: not counted."""
    result = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if result.returncode:
        raise UserError(f"dvc status: {one_line(result.stderr)[:300]}")
    modified = {path for changes in json.loads(result.stdout or "{}").values() for change in changes
                if isinstance(change, dict) for path, state in change.get("changed outs", {}).items()
                if state == "modified"}
    return sorted(path for path in modified if git("ls-files", "--", path).strip())


def main(args):
    if git("status", "--porcelain", "--", *CHECKED):
        raise UserError(f"{', '.join(CHECKED)}: changed since {COMMITTED}; commit or stash them first (git status)")
    load_params()  # one line for a params.yaml the stages would refuse, before anything runs
    contradicted = contradicted_outputs()
    if contradicted:
        raise UserError(f"{contradicted[0]}: not the file that the committed dvc.lock records for it (`dvc status`): "
                        f"the commit's results contradict its own lock ({len(contradicted)} outputs)")
    committed_numerics = committed_json(paths.NUMERICS)
    committed_accuracy = committed_json(paths.TEST_METRICS)["accuracy"]
    committed_lock = git("show", f"{COMMITTED}:dvc.lock")
    here = numerics.fingerprint(select_device())
    print(f"committed run: {numerics.describe(first(committed_numerics))}")
    print(f"this machine:  {numerics.describe(here)}")
    # Recomputed here, whatever the cache holds, the independent stages at once: the bytes of `dvc repro --force`.
    # With other numerics only the test accuracies are compared, so only the stages up to them run.
    other = difference(committed_numerics, dict.fromkeys(committed_numerics, numerics.deciding(here)))
    targets = [] if other is None else [ACCURACY_STAGE]
    if targets:
        print(f"other numerics: only the test accuracies are compared, so only `{ACCURACY_STAGE}` and the stages "
              "before it run")
    jobs = len(os.sched_getaffinity(0))
    rerun = subprocess.run([sys.executable, "-m", "mnist_dnn.cli", "repro", "--force", "--jobs", str(jobs), *targets])
    if rerun.returncode:
        raise UserError(f"mnist-dnn repro failed (exit status {rerun.returncode}): its error is above")

    computed_numerics = json.loads(paths.NUMERICS.read_text())
    changed = git("diff", "--stat", "--", *CHECKED)
    why = difference(committed_numerics, computed_numerics)
    if not changed:
        print("bit-identical: every model and metric byte for byte as committed; "
              + vendor_note(first(committed_numerics), here))
        restore = False
    elif why is None:
        print(changed + git("diff", "--", "dvc.lock"))
        raise UserError("not bit-identical although the numerics are the committed run's (the same CPU vendor "
                        "included): this code computes other models or metrics than the committed ones (the diff "
                        "above)")
    else:
        tolerance = tolerances(committed_json(paths.SEED_NOISE))
        rows = accuracy_rows(committed_accuracy, json.loads(paths.TEST_METRICS.read_text())["accuracy"], tolerance)
        before, after = model_hashes(committed_lock), model_hashes(Path("dvc.lock").read_text())
        print(f"{'variant':12} {'committed':>9} {'here':>7} {'diff pp':>7} {'tol pp':>6}  model md5 committed → here")
        for name, old, new, difference_pp, allowed, _ in rows:
            new_text, diff_text = ("–", "–") if new is None else (f"{100 * new:.2f}", f"{difference_pp:+.2f}")
            stage = f"train@{name}"
            print(f"{name:12} {100 * old:9.2f} {new_text:>7} {diff_text:>7} {allowed:6.2f}  "
                  f"{before.get(stage, '–')[:12]} → {after.get(stage, '–')[:12]}")
        outside = [row[0] for row in rows if not row[5]]
        if outside:
            raise UserError(f"not bit-identical, and beyond the tolerance for {', '.join(outside)}: this code "
                            "computes other results than the committed ones")
        print(f"not bit-identical: {why}; every test accuracy within {TOLERANCE_SIGMAS} × √2 × its seed noise of "
              "the committed one")
        restore = True

    variant, threads, how = args.determinism_variant, None, ""
    if "threads" in here:  # on the CPU: as many threads as each stage had
        threads = parallel.stage_threads(jobs)
        if "threads" not in numerics.deciding(here):  # numerics that promise the same bits under any count
            again = other_threads(threads)
            how = f" under {again} thread{'s' if again > 1 else ''} (the pipeline ran under {threads})"
            threads = again
    if not determinism(variant, (paths.TRAIN_SPLIT, paths.VAL_SPLIT), paths.model_file(variant), threads):
        raise UserError(f"{variant} trained again here{how} gave other bytes than the pipeline's run: training is not "
                        "deterministic here")
    print(f"deterministic: {variant} trained again here{how} gives the same bytes")
    if restore:
        git("checkout", COMMITTED, "--", *CHECKED)
        print(f"restored the committed {' and '.join(CHECKED)}; {paths.MODELS} keeps this machine's models")


if __name__ == "__main__":
    parser = ArgumentParser(prog="python -m mnist_dnn.tools.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--determinism-variant", default="dnn_dropout", help="the variant trained twice")
    run_stage(main, parser.parse_args())
