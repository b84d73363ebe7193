"""The tools around the pipeline: sharing and the run-cache, Ray runs, verify, the sweep, predict, the results'
agreement, the stages' code deps, and DVC's internals behind one door."""
