"""DVC stage `report`: one offline HTML page of the summary, training curves, confusion matrices and mistakes."""

from pathlib import Path

from mnist_dnn import data, files, metrics
from mnist_dnn.errors import ArgumentParser, UserError, run_stage
from mnist_dnn.html_report import build_report


def main(args):
    rows = metrics.read_summary(args.summary)
    images, _ = data.load_split(args.test)
    loss, accuracy, confusion = {}, {}, {}
    for name in (row["variant"] for row in rows):
        log_dir, stage = Path(args.train_logs, name), f"train@{name}"
        loss[name] = metrics.read_curve(log_dir, "train/loss", stage)
        accuracy[name] = metrics.read_curve(log_dir, "val/accuracy", stage)
        path = Path(args.confusion, f"{name}.csv")
        pairs = confusion[name] = metrics.read_table(path, ["actual", "predicted"], f"evaluate@{name}")
        if len(pairs) != len(images):
            raise UserError(f"{path}: {len(pairs)} rows for {len(images)} test images; run `dvc repro evaluate@{name}`")
    page = build_report(rows, loss, accuracy, confusion, images.numpy())
    with files.atomic_outputs(args.output) as (output,):
        output.write_text(page)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--summary", required=True, help="the summarize stage's JSON")
    parser.add_argument("--train-logs", required=True, help="folder of the train@<variant> stages' dvclive logs")
    parser.add_argument("--confusion", required=True, help="folder of the evaluate@<variant> stages' confusion CSVs")
    parser.add_argument("--test", required=True, help="test split")
    parser.add_argument("--output", required=True, help="HTML page to write")
    run_stage(main, parser.parse_args())
