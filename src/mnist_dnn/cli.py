"""The ``mnist-dnn`` console command; ``mnist-dnn predict`` gets one digit and predicts it, as the lecture's labs
end."""

import os
from importlib.metadata import version

from mnist_dnn import paths
from mnist_dnn.stage.runtime import ArgumentParser, run_stage


def main(argv=None):
    parser = ArgumentParser(prog="mnist-dnn", description="The lecture's MNIST models, reproduced.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('mnist-dnn')}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, summary):
        return commands.add_parser(name, help=summary, description=f"{summary}.")

    p = command("predict", "predict one digit: a test image, or a photo or drawing of your own")
    p.add_argument("--variant", help=f"trained variant to use (default: the best one in {paths.SUMMARY})")
    p.add_argument("--model", help=f"weights file to use (default: {paths.model_file('<variant>')})")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--index", type=int, help="test image number")
    source.add_argument("--image", help="an image of one digit (PNG, JPEG, GIF, WebP, BMP or TIFF), any size up to "
                        "50 megapixels, dark-on-light or light-on-dark")
    p.add_argument("--seed", type=int, default=777,
                   help="seed of the random test image shown without --index or --image")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    push = command("push-run-cache", "verify-cache, then dvc push --run-cache, and the outputs of its entries it "
                   "misses")
    push.add_argument("--remote", "-r", help="DVC remote (default: the default remote)")
    pull = command("pull-run-cache", "dvc pull --run-cache, refusing every run-cache entry that is not a run of a "
                   "stage of dvc.yaml or whose outputs contradict it")
    pull.add_argument("--remote", "-r", help="DVC remote (default: the default remote)")
    repro = command("repro", "dvc repro, each stage a Ray task in its own copy of the workspace, at most --jobs at "
                    "once, on this machine or a Ray cluster; then the summary table")
    repro.add_argument("targets", nargs="*", help="stages, as for dvc repro (default: all)")
    repro.add_argument("--jobs", "-j", type=int, default=os.cpu_count(), help="stages at once; by default one per core")
    repro.add_argument("--address", help="a running Ray cluster (default: $RAY_ADDRESS, else Ray started here)")
    repro.add_argument("--force", "-f", action="store_true", help="run every stage, even those up to date")
    repro.add_argument("--dry", action="store_true", help="print the stages and what each waits for; run nothing")
    repro.add_argument("--set-param", "-S", action="append", default=[], metavar="[params.yaml:]KEY=VALUE",
                       dest="params", help="run the stages with this param set, parsed as `dvc exp run -S` parses it "
                       "(+KEY=VALUE adds a key, ~KEY removes one), leaving the workspace as it is: the results go to "
                       "the run-cache, and that `dvc exp run -S` restores them")
    repro.add_argument("--via-remote", action="store_true", help="copies meet at the DVC remote, as on machines "
                       "without this one's disk (the default off this machine)")
    command("verify-cache", "check every object of the local DVC cache against the md5 it is named by")
    args = parser.parse_args(argv)
    if args.command == "predict":
        from mnist_dnn.tools import predict  # imports torch: only for this command

        run_stage(predict.run_predict, args)
        return
    if args.command == "repro":
        from mnist_dnn.tools import parallel  # imports DVC and Ray: only for this command

        options = parallel.Options(args.jobs, args.address, args.force, args.dry, args.via_remote)
        run_stage(parallel.repro, args.targets, options, args.params)
        return
    from mnist_dnn.tools import sharing  # imports DVC: only for these commands

    if args.command == "push-run-cache":
        run_stage(sharing.push_run_cache, args.remote)
    elif args.command == "pull-run-cache":
        run_stage(sharing.pull_run_cache, args.remote)
    else:
        run_stage(sharing.verify_cache)


if __name__ == "__main__":
    main()
