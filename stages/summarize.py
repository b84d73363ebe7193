"""DVC stage `summarize`: the lecture's table next to the reproduced one (Markdown and JSON)."""

from mnist_dnn import files, reporting
from mnist_dnn.config import load_params
from mnist_dnn.errors import run_stage


def main():
    params = load_params()
    accuracies = reporting.read_accuracies(params, "metrics/eval", "metrics/seeds")
    table = reporting.summary_table(params, accuracies)
    files.write_text("metrics/summary.md", reporting.to_markdown(table))
    files.write_text("metrics/summary.json", table.to_json(orient="records", indent=2) + "\n")
    print(reporting.to_markdown(table))


if __name__ == "__main__":
    run_stage(main)
