"""make verify's comparisons: the tolerance from seed noise, model hashes from dvc.lock, the accuracy check."""

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from helpers import REPO, commit, pipeline_env, run
from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.stage import numerics
from mnist_dnn.stage.device import select_device
from mnist_dnn.tools import verify

pytestmark = pytest.mark.xdist_group("verify")  # its end-to-end tests share one committed run

LOCK = f"""schema: '2.0'
stages:
  train@softmax:
    cmd: python stages/train.py softmax
    outs:
    - path: metrics/train/softmax/metrics.json
      md5: 1111111111111111111111111111111a
    - path: {paths.model_file("softmax")}
      md5: 2222222222222222222222222222222b
  evaluate@softmax:
    cmd: python stages/evaluate.py softmax
    outs:
    - path: metrics/eval/softmax.json
      md5: 3333333333333333333333333333333c
"""


def test_the_tolerance_is_three_times_the_spread_of_a_difference_of_two_seeds():
    tolerance = verify.tolerances([{"variant": "softmax", "std": 0.001}, {"variant": "dnn", "std": 0.002}])
    spread = 3 * math.sqrt(2)
    assert tolerance == {"softmax": pytest.approx(spread * 0.001), "dnn": pytest.approx(spread * 0.002)}


def test_a_seed_noise_file_without_statistics_is_refused_in_one_line():
    with pytest.raises(UserError, match="make seed-noise"):
        verify.tolerances([{"variant": "softmax", "reproduced_accuracy": 0.9}])


def test_model_hashes_are_the_train_stages_models():
    assert verify.model_hashes(LOCK) == {"train@softmax": "2" * 31 + "b"}


def test_accuracies_within_and_beyond_their_tolerance():
    rows = verify.accuracy_rows({"a": 0.90, "b": 0.95, "c": 0.97}, {"a": 0.903, "b": 0.9449}, {"a": 0.004, "b": 0.004})
    by_name = {row[0]: row for row in rows}
    assert by_name["a"][3] == pytest.approx(0.3) and by_name["a"][5]
    assert by_name["b"][3] == pytest.approx(-0.51) and not by_name["b"][5]
    assert by_name["c"][2] is None and not by_name["c"][5]  # a variant the run did not compute fails


AMD = {"device": "cpu", "mode": "portable", "mkl_branch": "AUTO,STRICT", "cpu_vendor": "AuthenticAMD"}
INTEL = AMD | {"mkl_branch": "AVX2,STRICT", "cpu_vendor": "GenuineIntel"}


def test_the_same_numerics_are_no_difference():
    assert verify.difference({"softmax": AMD}, {"softmax": dict(AMD)}) is None


def test_another_vendor_is_named_with_the_committed_one():
    assert verify.difference({"softmax": AMD}, {"softmax": INTEL}) == \
        "another CPU vendor (GenuineIntel) than the committed run (AuthenticAMD)"


def test_other_numerics_of_the_same_vendor_name_what_changed():
    native = AMD | {"mode": "native", "threads": 2}
    assert verify.difference({"softmax": AMD}, {"softmax": native}) == \
        "other numerics than the committed run (mode portable → native, threads – → 2)"
    cuda = {"device": "cuda", "gpu": "H100"}
    assert verify.difference({"softmax": AMD}, {"softmax": cuda}).startswith("other numerics than the committed run")


def test_the_vendor_note_says_whether_the_vendors_differ():
    assert verify.vendor_note(AMD, AMD) == "this machine's CPU vendor is the committed run's (AuthenticAMD)"
    assert verify.vendor_note(AMD, INTEL) == \
        "this machine's CPU vendor (GenuineIntel) is not the committed run's (AuthenticAMD)"


def test_the_determinism_rerun_takes_another_thread_count():
    assert [verify.other_threads(n) for n in (1, 2, 16)] == [2, 1, 1]


# ---- end to end: make verify in a committed small run of the project --------------------------------------------

def run_verify(root, **env):
    return subprocess.run([sys.executable, "-m", "mnist_dnn.tools.verify"], cwd=root, env=pipeline_env() | env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def committed(cut_project, tmp_path_factory):
    """A copy of the cut project (two variants, one optimizer, seed noise 1 pp per variant): the committed run."""
    root = tmp_path_factory.mktemp("verify") / "mnist-dnn"
    shutil.copytree(cut_project, root, symlinks=True)
    return root


@pytest.mark.e2e
def test_verify_with_the_committed_numerics_requires_the_same_bytes(committed):
    result = run_verify(committed)
    assert result.returncode == 0, result.stderr
    assert "bit-identical: every model and metric byte for byte as committed; this machine's CPU vendor is the " \
           "committed run's" in result.stdout
    rerun = re.search(r"deterministic: dnn_dropout trained again here under (\d+) threads? \(the pipeline ran under "
                      r"(\d+)\) gives the same bytes", result.stdout)
    assert rerun and rerun[1] != rerun[2], result.stdout


@pytest.mark.e2e
def test_verify_with_other_numerics_compares_accuracies_within_seed_noise(committed):
    """This CPU's own kernels, against a committed run recorded on another vendor's CPU: either alone takes this
    branch, and the vendor is named first (the test of verify.difference above has the words for each)."""
    numerics_path = committed / "metrics/numerics.json"
    recorded = json.loads(numerics_path.read_text())
    here = next(iter(recorded.values()))["cpu_vendor"]
    other = "AuthenticAMD" if here == "GenuineIntel" else "GenuineIntel"
    numerics_path.write_text(json.dumps({name: n | {"cpu_vendor": other} for name, n in recorded.items()}))
    relock(committed, numerics_path)  # as that run's own dvc.lock records it
    commit(committed, "the committed run, from another vendor's CPU")
    try:
        result = run_verify(committed, MNIST_DNN_NUMERICS="native")  # this CPU's own kernels, as another CPU has them
        status = subprocess.run(["git", "status", "--porcelain", "--", "dvc.lock", "metrics/"], cwd=committed,
                                capture_output=True, text=True).stdout
    finally:
        run(["git", "reset", "-q", "--hard", "HEAD~1"], committed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"not bit-identical: another CPU vendor ({here}) than the committed run ({other}); every test accuracy " \
           "within 3 × √2 × its seed noise" in result.stdout
    assert "committed run: CPU, portable numerics" in result.stdout
    assert "this machine:  CPU, native numerics" in result.stdout
    assert "only `summarize` and the stages before it run" in result.stdout
    ran = set(re.findall(r"^\[\d+/\d+\] (\S+): ran", result.stdout, re.M))
    assert {"train@dnn_dropout", "evaluate@dnn_dropout"} <= ran and not any("optimizer" in s for s in ran), ran
    assert status == ""  # the committed results are restored


def relock(root, path):
    """Record the present content of the output ``path`` in the dvc.lock at ``root``, as a run that wrote it would."""
    lock = root / "dvc.lock"
    name = str(path.relative_to(root))
    entry = re.search(rf"- path: {re.escape(name)}\n\s+hash: md5\n\s+md5: (\w+)", lock.read_text())
    assert entry, name
    lock.write_text(lock.read_text().replace(entry[1], hashlib.md5(path.read_bytes()).hexdigest()))


@pytest.mark.e2e
@pytest.mark.parametrize("tamper", ["accuracy", "vendor"])
def test_verify_refuses_a_commit_whose_results_contradict_its_own_dvc_lock_before_retraining(committed, tamper):
    """Test accuracy raised by 0.2 pp, or the recorded vendor changed, without the dvc.lock that a run would write."""
    path = committed / (paths.TEST_METRICS if tamper == "accuracy" else paths.NUMERICS)
    text = path.read_text()
    if tamper == "accuracy":
        result = json.loads(text)
        result["accuracy"] = {name: value + 0.002 for name, value in result["accuracy"].items()}
        path.write_text(json.dumps(result))
    else:
        vendor = json.loads(text)[next(iter(json.loads(text)))]["cpu_vendor"]
        path.write_text(text.replace(vendor, "GenuineIntel" if vendor == "AuthenticAMD" else "AuthenticAMD"))
    commit(committed, "results that the lock contradicts")
    try:
        result = run_verify(committed)
    finally:
        run(["git", "reset", "-q", "--hard", "HEAD~1"], committed)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"error: {path.relative_to(committed)}: not the file that the committed dvc.lock records "
                             "for it (`dvc status`): the commit's results contradict its own lock (1 outputs)\n")


def test_verify_fails_when_a_rerun_with_the_committed_numerics_gives_other_bytes(tmp_path, monkeypatch):
    """A committed run whose numerics are this machine's, and a rerun that computes another test accuracy (as code
    that computes other numbers would): verify fails, after the diff, before any determinism rerun."""
    here = numerics.recorded(select_device())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "dvc.lock").write_text(LOCK)
    (tmp_path / "metrics/numerics.json").write_text(json.dumps({"softmax": here}))
    (tmp_path / "metrics/test.json").write_text(json.dumps({"accuracy": {"softmax": 0.9}}))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    run(["git", "init", "-q"], tmp_path)
    commit(tmp_path, "the committed run")
    monkeypatch.chdir(tmp_path)
    real_run, reruns = subprocess.run, []

    def rerun(cmd, **kwargs):  # `mnist-dnn repro --force`, as code that computes other numbers would leave it
        if cmd[:2] == ["dvc", "status"]:  # the committed outputs are what the committed lock records
            return subprocess.CompletedProcess(cmd, 0, stdout="{}")
        if cmd[1:4] != ["-m", "mnist_dnn.cli", "repro"]:
            return real_run(cmd, **kwargs)
        reruns.append(cmd)
        (tmp_path / "metrics/test.json").write_text(json.dumps({"accuracy": {"softmax": 0.91}}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", rerun)
    with pytest.raises(UserError, match=r"^not bit-identical although the numerics are the committed run's"):
        verify.main(SimpleNamespace(determinism_variant="softmax"))
    assert [cmd[4:] for cmd in reruns] == [["--force", "--jobs", str(len(os.sched_getaffinity(0)))]]  # all of it
