"""The committed results agree: the seed-noise table, the sweep and the README's picture come from the run of the main
table, every one of them names the same numerics, and the docs' prose quotes only figures they hold. ``make results``
remakes them all at once, then checks this.
"""

import json
from pathlib import Path

from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.config import load_params
from mnist_dnn.results import doc_tables, outputs, report_picture
from mnist_dnn.stage.runtime import run_stage
from mnist_dnn.tools import sweep

SEED_NOISE_NUMERICS = Path("metrics/seed_noise_numerics.json")  # `make seed-noise` writes it beside SEED_NOISE


def disagreements(root="."):
    """Each way the committed results under ``root`` disagree with each other, in a line naming the files; an empty
    list when they agree."""
    root = Path(root)
    params = load_params(root / "params.yaml", training=False)
    table = {row["variant"]: row for row in outputs.read_summary(root / paths.SUMMARY)}
    noise = {row["variant"]: row for row in outputs.read_summary(root / paths.SEED_NOISE, "make seed-noise")}
    keep_probs = outputs.read_sweep(root / paths.SWEEP)
    found = []
    for variant, row in table.items():
        differing = [key for key, value in row.items() if noise.get(variant, {}).get(key) != value]
        if differing:
            found.append(f"{paths.SEED_NOISE}: its train.seed run of {variant} is not the main table's (other "
                         f"{', '.join(differing)} than {paths.SUMMARY})")
    seed, keep_prob = params.train.seed, params.keep_prob
    swept = [run["accuracies"][run["seeds"].index(seed)] for run in keep_probs["runs"]
             if run["keep_prob"] == keep_prob and seed in run["seeds"]]
    variant = keep_probs["variant"]
    expected = table.get(variant, {}).get("reproduced_accuracy")
    if swept != [expected]:
        found.append(f"{paths.SWEEP}: its run of keep_prob {keep_prob:g} and seed {seed} "
                     f"({', '.join(map(str, swept)) or 'none'}) is not the main table's {variant} ({expected})")
    recorded = {  # each set of results: the numerics of its models
        paths.NUMERICS: outputs.read_json(root / paths.NUMERICS, dict, "dvc repro summarize").values(),
        SEED_NOISE_NUMERICS: outputs.read_json(root / SEED_NOISE_NUMERICS, dict, "make seed-noise").values(),
        sweep_numerics(): [outputs.read_json(root / sweep_numerics(), dict, "make sweep")],
    }
    distinct = {path: {json.dumps(n, sort_keys=True) for n in each} for path, each in recorded.items()}
    if len(set().union(*distinct.values())) > 1:
        named = "; ".join(f"{path}: {' and '.join(sorted(map(_machine, keys)))}" for path, keys in distinct.items())
        found.append(f"other numerics in one set of results ({named})")
    picture, report = root / report_picture.PICTURE, root / paths.REPORT
    if report_picture.source_digest(picture) != report_picture.sha256(report):
        found.append(f"{report_picture.PICTURE}: not the first screen of {paths.REPORT} as committed")
    for doc, figure in doc_tables.unsourced_figures(root, params.lecture_accuracy.values()):
        found.append(f"{doc}: quotes {figure}, which no committed result table holds (edit its prose)")
    return found


def sweep_numerics():
    """Where `make sweep` records the numerics of the sweep at paths.SWEEP."""
    return sweep.numerics_file(paths.SWEEP.with_suffix(""))


def _machine(key):
    """The CPU vendor or GPU of the numerics ``key`` (JSON), in a word or two."""
    numerics = json.loads(key)
    return numerics.get("cpu_vendor") or numerics.get("gpu") or "unknown"


def main():
    found = disagreements()
    if found:
        raise UserError(f"the committed results disagree ({' | '.join(found)}): run `make results`, which remakes "
                        "them all at once")
    print("the committed results agree: one run, one set of numerics, the README's picture of this report")


if __name__ == "__main__":
    run_stage(main)
