"""DVC stage `report`: one offline HTML page of the summary, training curves, confusion matrices and mistakes."""

from mnist_dnn import data, files, report, reporting
from mnist_dnn.errors import UserError, run_stage


def main():
    rows = report.read_summary("metrics/summary.json")
    images, _ = data.load_split("data/prepared/test.safetensors")
    loss, accuracy, confusion = {}, {}, {}
    for name in (row["variant"] for row in rows):
        plots = f"metrics/train/{name}/plots/metrics"
        loss[name] = reporting.read_table(f"{plots}/train/loss.tsv", ["step", "loss"], f"train@{name}", sep="\t")
        accuracy[name] = reporting.read_table(f"{plots}/val/accuracy.tsv", ["step", "accuracy"], f"train@{name}", sep="\t")
        path = f"metrics/confusion/{name}.csv"
        pairs = confusion[name] = reporting.read_table(path, ["actual", "predicted"], f"evaluate@{name}")
        if len(pairs) != len(images):
            raise UserError(f"{path}: {len(pairs)} rows for {len(images)} test images; run `dvc repro evaluate@{name}`")
    files.write_text("metrics/report.html", report.build_report(rows, loss, accuracy, confusion, images.numpy()))
    print("wrote metrics/report.html")


if __name__ == "__main__":
    run_stage(main)
