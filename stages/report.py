"""DVC stage `report`: one offline HTML page of the whole lecture: the summary, seed noise, the keep_prob sweep,
training curves, confusion matrices, mistakes, autograd graphs and the optimizer study; and the playground page, where
a reader draws a digit for the trained variants to predict."""

from pathlib import Path

from mnist_dnn.errors import UserError
from mnist_dnn.lecture import data
from mnist_dnn.lecture.config import load_params
from mnist_dnn.lecture.models import load_as
from mnist_dnn.results import autograd_graph, outputs
from mnist_dnn.results.html_report import ReportInputs, build_report
from mnist_dnn.results.playground import build_playground
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(args):
    params = load_params(training=False)
    outputs.check_trained_with(params, args.eval)
    rows = outputs.read_summary(args.summary)
    images, labels = data.load_split(args.test)
    loss, after_step, accuracy, confusion = {}, {}, {}, {}
    for name in (row["variant"] for row in rows):
        log_dir, stage = Path(args.train_logs, name), f"train@{name}"
        loss[name] = outputs.read_curve(log_dir, "train/loss", stage)
        after = outputs.read_curve(log_dir, "train/loss_after_step", stage)
        after_step[name] = after.rename(columns={"loss_after_step": "loss"})
        accuracy[name] = outputs.read_curve(log_dir, "val/accuracy", stage)
        path = Path(args.confusion, f"{name}.csv")
        pairs = confusion[name] = outputs.read_confusion(path, f"evaluate@{name}")
        if len(pairs) != len(images):
            raise UserError(f"{path}: {len(pairs)} rows for {len(images)} test images; run `dvc repro evaluate@{name}`")
    batch = slice(0, params.train.batch_size)  # the graphs' batch: the first test images
    inputs, targets = data.to_inputs(images[batch], "cpu"), data.to_targets(labels[batch], "cpu")
    graphs = {name: autograd_graph.variant_graphs(params.model_spec(name), inputs, targets) for name in loss}
    page = build_report(ReportInputs(
        rows=rows, loss=loss, accuracy=accuracy, after_step=after_step,
        lecture_cost={name: params.lecture_cost[name] for name in loss if name in params.lecture_cost},
        confusion=confusion, images=images.numpy(),
        seed_noise=outputs.read_summary(args.seed_noise, "make seed-noise"),
        sweep=outputs.read_sweep(args.sweep),
        lecture_graph=autograd_graph.lecture_graph(), graphs=graphs,
        optimizers=outputs.read_optimizers(args.optimizers),
        optimizer_curves=outputs.read_optimizer_curves(args.optimizer_curves),
        study=params.optimizer_study,
    ))
    models = {name: load_as(Path(args.models, f"{name}.safetensors"), params.model_spec(name),
                            params.trained_with(name))[0] for name in loss}
    with files.atomic_outputs(args.output, args.playground) as (output, playground):
        output.write_text(page)
        playground.write_text(build_playground(models))
    print(f"wrote {args.output} and {args.playground}")


if __name__ == "__main__":
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--summary", required=True, help="the summarize stage's JSON")
    parser.add_argument("--eval", required=True, help="folder of evaluate@<variant> metrics")
    parser.add_argument("--train-logs", required=True, help="folder of the train@<variant> stages' dvclive logs")
    parser.add_argument("--confusion", required=True, help="folder of the evaluate@<variant> stages' confusion CSVs")
    parser.add_argument("--test", required=True, help="test split")
    parser.add_argument("--seed-noise", required=True, help="summary JSON with seed statistics (`make seed-noise`)")
    parser.add_argument("--sweep", required=True, help="the keep_prob sweep's JSON (`make sweep`)")
    parser.add_argument("--optimizers", required=True, help="the compare_optimizers stage's JSON table")
    parser.add_argument("--optimizer-curves", required=True, help="the compare_optimizers stage's per-epoch CSV")
    parser.add_argument("--models", required=True, help="folder of the train@<variant> stages' models")
    parser.add_argument("--output", required=True, help="HTML page to write")
    parser.add_argument("--playground", required=True, help="the draw-a-digit HTML page to write")
    run_stage(main, parser.parse_args())
