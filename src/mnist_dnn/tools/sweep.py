"""A sweep of keep_prob over seeds of one variant, on DVC's experiment queue: queue, wait, collect, write.

``make sweep`` runs ``python -m mnist_dnn.tools.sweep``. Each keep_prob value is one queued experiment that runs only
the variant's own stages (``dvc exp run <targets>``): its training with train.seed, and one ``seed@<variant>-<seed>``
stage per extra seed. The results are read back from the experiments' git refs, as ``make seed-noise`` does.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.lecture.config import load_params, parse_params
from mnist_dnn.results import charts, outputs, tables
from mnist_dnn.results.markdown import sweep_markdown
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import ArgumentParser, run_stage

POLL_SECONDS = 10


def experiment_name(value):
    """The name of the sweep's experiment for ``keep_prob = value``, e.g. ``sweep-keep_prob-0.3``."""
    return f"sweep-keep_prob-{value:g}"


def targets(variant, seeds):
    """The stages one sweep point runs: the variant's training and test with train.seed, and each extra seed's."""
    return [f"evaluate@{variant}", *(f"seed@{variant}-{seed}" for seed in seeds)]


def dvc(*args, capture=False):
    """Run ``dvc args``; a UserError with its output if it fails. The output goes through files, not pipes: `dvc queue
    start` leaves its workers running with them, and a pipe would keep this waiting until the last worker exits."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        returncode = subprocess.run(["dvc", *args], stdout=stdout, stderr=stderr).returncode
        stdout.seek(0), stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if returncode != 0:
        raise UserError(f"`dvc {' '.join(args)}` failed: {(errors or output).strip()}")
    return output if capture else None


def experiment_refs():
    """Experiment name → its git ref, the newest ref where a name has several."""
    out = subprocess.run(
        ["git", "for-each-ref", "--sort=committerdate", "--format=%(refname)", "refs/exps"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {ref.rsplit("/", 1)[-1]: ref for ref in out.split()}


def read_at(ref, path):
    """The file ``path`` as experiment ``ref`` left it: from git, or from DVC's cache for a DVC-tracked output."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return dvc.api.read(path, rev=ref)
    except (DvcException, OSError) as err:
        raise UserError(f"{ref}: no {path} in the experiment ({err})") from None


def queue(values, variant, seeds):
    """Queue one experiment per keep_prob value, after removing earlier experiments of the same names."""
    old = [name for name in map(experiment_name, values) if name in experiment_refs()]
    if old:
        dvc("exp", "remove", *old)
    for value in values:
        dvc("exp", "run", "--queue", "--name", experiment_name(value), "-S", f"keep_prob={value}",
            "-S", f"extra_seeds={list(seeds)}", *targets(variant, seeds))


def wait(jobs):
    """Start ``jobs`` queue workers (one thread each) and wait until nothing is queued or running, printing a line
    whenever an experiment starts or ends."""
    os.environ["OMP_NUM_THREADS"] = "1"
    dvc("queue", "start", "--jobs", str(jobs))
    start, shown = time.monotonic(), None
    while True:
        states = queue_states(dvc("queue", "status", capture=True))
        if states != shown:
            counts = ", ".join(f"{len(names)} {state.lower()}" for state, names in states.items())
            running = "; running: " + ", ".join(states["Running"]) if states.get("Running") else ""
            print(f"sweep, {time.monotonic() - start:.0f} s: {counts}{running}", flush=True)
            shown = states
        if not {"Queued", "Running"} & set(states):
            return
        time.sleep(POLL_SECONDS)


def queue_states(status):
    """The experiments of `dvc queue status` output, by state (Queued, Running, Success, Failed, …)."""
    states = {}
    for name, state in re.findall(r"^\S+\s+(\S+)\s+.*?\b(Queued|Running|Success|Failed)\b", status, re.M):
        states.setdefault(state, []).append(name)
    return states


def collect(values, variant, seeds):
    """Per keep_prob value: its test accuracies, train.seed's first, read from the sweep's experiment refs; and the
    numerics that computed them (those of its train.seed models, the same for every value)."""
    refs = experiment_refs()
    records, numerics = [], {}
    for value in values:
        name = experiment_name(value)
        if name not in refs:
            raise UserError(f"experiment {name} did not finish; see `dvc queue logs {name}`")
        ref = refs[name]
        params = parse_params(read_at(ref, "params.yaml"), f"{ref}:params.yaml")
        files_read = [str(paths.eval_file(variant)), *(str(paths.seed_file(variant, seed)) for seed in seeds)]
        schemas = [outputs.EvalMetrics, *[outputs.SeedMetrics] * len(seeds)]
        results = [outputs.parse_json(read_at(ref, path), schema, f"{ref}:{path}", f"dvc queue logs {name}")
                   for path, schema in zip(files_read, schemas)]
        numerics[name] = results[0]["numerics"]
        records.append({"keep_prob": params.keep_prob, "seeds": [params.train.seed, *seeds],
                        "accuracies": [result["accuracy"] for result in results]})
    if len({json.dumps(n, sort_keys=True) for n in numerics.values()}) > 1:
        raise UserError(f"the sweep's experiments ran with other numerics than each other ({', '.join(numerics)}): "
                        "run them all on one machine")
    return records, next(iter(numerics.values()))


def numerics_file(output):
    """Where the sweep written to ``output`` (a path without suffix) records its numerics."""
    output = Path(output)
    return output.with_name(f"{output.name}_numerics.json")


def check(params, variant, values, seeds):
    """A UserError unless ``variant`` uses dropout, each value is a keep_prob and no seed is train.seed."""
    if not params.variant(variant).dropout:
        raise UserError(f"{variant} uses no dropout: keep_prob does not change it")
    if not all(0 < value <= 1 for value in values):
        raise UserError(f"keep_prob values must be in (0, 1], got {', '.join(f'{v:g}' for v in values)}")
    if params.train.seed in seeds:
        raise UserError(f"seed {params.train.seed} is train.seed already; list only the extra seeds")


def main(args):
    values = [round(v, 6) for v in args.values]
    check(load_params(), args.variant, values, args.seeds)
    if not args.collect_only:
        queue(values, args.variant, args.seeds)
        wait(args.jobs)
    runs, numerics = collect(values, args.variant, args.seeds)
    table = tables.sweep_table(runs)
    markdown = sweep_markdown(table, args.variant, runs[0]["seeds"])
    chart = charts.error_bar_chart(table, tables.sweep_points(runs), f"{args.variant}: does dropout help?")
    out = Path(args.output)
    written = [out.with_suffix(suffix) for suffix in (".json", ".md", ".svg")] + [numerics_file(out)]
    with files.atomic_outputs(*written) as (json_path, markdown_path, svg_path, numerics_path):
        files.write_json(json_path, {"variant": args.variant, "runs": runs})
        markdown_path.write_text(markdown)
        svg_path.write_text(chart)
        files.write_json(numerics_path, numerics)
    print(markdown)


if __name__ == "__main__":
    parser = ArgumentParser(prog="python -m mnist_dnn.tools.sweep", description=__doc__)
    parser.add_argument("--values", type=float, nargs="+", required=True, help="keep_prob values")
    parser.add_argument("--variant", default="dnn_dropout", help="the variant with dropout")
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="extra seeds besides train.seed")
    parser.add_argument("--jobs", type=int, default=2, help="queue workers")
    parser.add_argument("--output", required=True, help="path without suffix of the .json, .md and .svg to write")
    parser.add_argument("--collect-only", action="store_true", help="only collect the finished experiments")
    run_stage(main, parser.parse_args())
