"""DVC stage `compare_optimizers`: the optimizer study as a table and a validation-accuracy plot."""

import json
from pathlib import Path

import pandas as pd

from mnist_dnn import files, reporting
from mnist_dnn.config import load_params
from mnist_dnn.errors import UserError, run_stage

RESULTS = Path("metrics/optimizers")


def main():
    study = load_params().optimizer_study
    results, val_accuracy, curves = {}, {}, []
    for name in study.optimizers:
        stage = f"optimizers@{name}"
        try:
            results[name] = json.loads((RESULTS / f"{name}.json").read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"no results for optimizer {name} ({err}); run `dvc repro {stage}`") from None
        curve = reporting.read_table(
            RESULTS / name / "plots/metrics/val/accuracy.tsv", ["step", "accuracy"], stage, sep="\t"
        )
        val_accuracy[name] = curve["accuracy"].tolist()
        curves.append(curve.rename(columns={"step": "epoch", "accuracy": "val_accuracy"}).assign(optimizer=name))
    table = reporting.optimizer_table(study, results, val_accuracy)
    files.write_text("metrics/optimizers.md", reporting.optimizer_markdown(table, study))
    files.write_text("metrics/optimizers.json", table.to_json(orient="records", indent=2) + "\n")
    files.write_text("metrics/optimizers_val_accuracy.csv", pd.concat(curves).to_csv(index=False))
    print(reporting.optimizer_markdown(table, study))


if __name__ == "__main__":
    run_stage(main)
