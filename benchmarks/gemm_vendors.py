"""Benchmark: does this CPU compute the training shapes' matrix products with the same bits as a reference machine?

Runs ``gemm_probe.py`` (in ../shared/numerics/, beside its reference files) under each setting of a reference file,
one fresh process per setting, and compares each shape's hash with the reference's. Prints one line per setting and
writes the per-shape comparison as JSON. ``make bench-vendors``; docs/reproducibility.md reads the result.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "numerics"
# the variables a reference line may set; cleared first so that only the line's own ones are in force
VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
             "OPENBLAS_NUM_THREADS", "ONEDNN_MAX_CPU_ISA")


def probe(probe_path, setting):
    """The probe's result under ``setting`` (a reference line), or None where this CPU cannot run it."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES} | setting["env"]
    k_slice = [str(setting["k_slice"])] if setting["k_slice"] else []
    args = [sys.executable, str(probe_path), setting["backend"], *k_slice]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/gemm_vendors.py", description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=str(SHARED / "reference-intel-xeon-avx512-amx.jsonl"))
    parser.add_argument("--probe", default=str(SHARED / "gemm_probe.py"))
    parser.add_argument("--output", help="also write the comparison as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for line in Path(args.reference).read_text().splitlines():
        setting = json.loads(line)
        here = probe(args.probe, setting)
        shapes = {shape: here is not None and here["shapes"][shape] == hashed
                  for shape, hashed in setting["shapes"].items()}
        rows.append({"backend": setting["backend"], "k_slice": setting["k_slice"], "env": setting["env"],
                     "reference": setting["shapes"], "here": here and here["shapes"], "same": shapes})
        settings = " ".join(f"{k}={v}" for k, v in setting["env"].items())
        verdict = "cannot run here" if here is None else f"{sum(shapes.values())}/{len(shapes)} shapes the same"
        missing = [shape for shape, same in shapes.items() if not same]
        print(f"{setting['backend']:5} k_slice {str(setting['k_slice']):4} {settings:48} {verdict}"
              + (f" (differ: {', '.join(missing)})" if here is not None and missing else ""), flush=True)
    if args.output:
        from mnist_dnn.stage import files, numerics

        with files.atomic_outputs(args.output) as (path,):
            files.write_json(path, {"machine": numerics.fingerprint(), "reference": Path(args.reference).name,
                                    "settings": rows})
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
