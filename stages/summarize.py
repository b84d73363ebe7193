"""DVC stage `summarize`: the lecture's table next to the reproduced one (Markdown and JSON), the headline
metrics (each variant's test accuracy and loss, the one file that DVC calls metrics) and the numerics that computed
each model."""

from mnist_dnn.lecture.config import load_params
from mnist_dnn.results import outputs, tables
from mnist_dnn.results.markdown import summary_markdown
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params(training=False)
    outputs.check_trained_with(params, args.eval, args.seeds)
    accuracies = outputs.read_accuracies(params.variants, params.extra_seeds, args.eval, args.seeds)
    costs = outputs.read_costs(params.variants, params.extra_seeds, args.train_logs, args.seeds)
    table = tables.summary_table(params, accuracies, costs)
    headline = outputs.read_test_metrics(params.variants, args.eval)
    computed_with = outputs.read_numerics(params.variants, args.eval)
    markdown = summary_markdown(table, computed_with)
    written = args.markdown, args.json, args.metrics, args.numerics
    with files.atomic_outputs(*written) as (markdown_path, json_path, metrics_path, numerics_path):
        markdown_path.write_text(markdown)
        json_path.write_text(table.to_json(orient="records", indent=2) + "\n")
        files.write_json(metrics_path, headline)
        files.write_json(numerics_path, computed_with)
    print(markdown)


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True, help="folder of evaluate@<variant> metrics")
    parser.add_argument("--seeds", required=True, help="folder of seed@<variant>-<seed> metrics")
    parser.add_argument("--train-logs", required=True, help="folder of the train@<variant> stages' dvclive logs")
    parser.add_argument("--markdown", required=True, help="Markdown summary to write")
    parser.add_argument("--json", required=True, help="JSON summary to write")
    parser.add_argument("--metrics", required=True, help="headline metrics JSON to write: test accuracy and loss")
    parser.add_argument("--numerics", required=True, help="JSON to write: the numerics that computed each model")
    run_stage(main, parser.parse_args())
