"""DVC stage `compare_optimizers`: the optimizer study as a table and a validation-accuracy plot."""

from pathlib import Path

import pandas as pd

from mnist_dnn.lecture.config import load_params
from mnist_dnn.results import outputs, tables
from mnist_dnn.results.markdown import optimizer_markdown
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    study = load_params(training=False).optimizer_study
    results, curves = {}, {}
    for name in study.optimizers:
        stage = f"optimizer_study@{name}"
        path = Path(args.results, f"{name}.json")
        results[name] = outputs.read_json(path, outputs.OptimizerResult, f"dvc repro {stage}")
        curves[name] = outputs.read_curve(Path(args.results, name), "val/accuracy", stage)
    table = tables.optimizer_table(study, results, {name: curve["accuracy"].tolist() for name, curve in curves.items()})
    plot = pd.concat(
        curve.rename(columns={"step": "epoch", "accuracy": "val_accuracy"}).assign(optimizer=name)
        for name, curve in curves.items()
    )
    markdown = optimizer_markdown(table, study)
    with files.atomic_outputs(args.markdown, args.json, args.plot) as (markdown_path, json_path, plot_path):
        markdown_path.write_text(markdown)
        json_path.write_text(table.to_json(orient="records", indent=2) + "\n")
        plot.to_csv(plot_path, index=False)
    print(markdown)


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--results", required=True, help="folder of the optimizer_study@<name> stages' outputs")
    parser.add_argument("--markdown", required=True, help="Markdown table to write")
    parser.add_argument("--json", required=True, help="JSON table to write")
    parser.add_argument("--plot", required=True, help="validation accuracy per epoch and optimizer, CSV to write")
    run_stage(main, parser.parse_args())
