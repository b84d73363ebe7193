"""run_stage: one line and a documented exit status for each way a stage can fail: 2 bad input, 1 environment,
130 interrupted; and no stage outlives the dvc process that started it."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, TIME_CAP
from mnist_dnn.errors import UserError
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import run_stage


def expect_exit(capsys, status, main, *args):
    """Run ``main`` through run_stage; check it exits with ``status`` and one error line on stderr; return the line."""
    with pytest.raises(SystemExit) as info:
        run_stage(main, *args)
    assert info.value.code == status
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_user_error_is_one_line_and_exit_2(capsys):
    def main():
        raise UserError("something is wrong")

    assert expect_exit(capsys, 2, main) == "error: something is wrong\n"


def test_run_stage_passes_args_and_returns_normally(capsys):
    calls = []
    run_stage(lambda *args: calls.append(args), 1, "two")
    assert calls == [(1, "two")]
    assert capsys.readouterr().err == ""


def test_run_stage_lets_bugs_through():
    def main():
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_stage(main)


@pytest.mark.parametrize("script, args, expected", [
    ("train.py", [], "train.py: the following arguments are required: variant, --train, --val, --model, --log"),
    ("seed.py", ["softmax", "one", "--train", "t", "--val", "v", "--test", "t", "--model", "m", "--metrics", "m"],
     "seed.py: argument seed: invalid int value: 'one'"),
])
def test_a_stage_called_with_the_wrong_arguments_says_so_in_one_line(tmp_path, script, args, expected):
    result = subprocess.run([sys.executable, REPO / "stages" / script, *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=TIME_CAP)
    assert result.returncode == 2
    assert result.stderr == f"error: {expected} (see --help)\n"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    def main():
        raise KeyboardInterrupt

    assert expect_exit(capsys, 130, main) == "error: interrupted\n"


def write_atomically(path, data):
    with files.atomic_outputs(path) as (tmp,):
        files.write_json(tmp, data)


def test_a_folder_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "metrics").write_text("a file where the output folder should be")
    err = expect_exit(capsys, 1, write_atomically, tmp_path / "metrics/eval/x.json", {"accuracy": 1.0})
    assert err == f"error: {tmp_path / 'metrics/eval'}: Not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics"]


# ---- real processes: signals, pipes, a full disk, a dying parent --------------------------------------------

STAGE = """
import sys, time
from pathlib import Path
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import run_stage

def main(out):
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    with files.atomic_outputs(out) as (tmp,):
        tmp.write_text("done\\n")

run_stage(main, sys.argv[1])
"""


def start_stage(tmp_path, seconds, **kwargs):
    """A stage-like process that says ``ready``, waits ``seconds``, then writes ``out.txt``; returns it once ready."""
    stage = subprocess.Popen([sys.executable, "-c", STAGE, "out.txt", str(seconds)], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    assert read_line(stage.stdout) == "ready\n"
    return stage


def test_sigint_is_one_line_and_exit_130_and_writes_nothing(tmp_path):
    stage = start_stage(tmp_path, TIME_CAP)
    stage.send_signal(signal.SIGINT)
    _, err = stage.communicate(timeout=TIME_CAP)
    assert stage.returncode == 130
    assert err == "error: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_closed_pipe_is_a_quiet_exit(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` once head has gone: every write fails with EPIPE
    code = "from mnist_dnn.stage.runtime import run_stage; run_stage(lambda: print('line\\n' * 100_000))"
    result = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, text=True,
                            timeout=TIME_CAP)
    os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 1


def limit_file_size():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


FULL_DISK = """
from mnist_dnn.lecture import models
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import run_stage

def write_model():
    spec = models.ModelSpec(variant="m", hidden=(64,), init="normal", bias_init="normal")
    with files.atomic_outputs("weights/m.safetensors") as (path,):
        spec.save(spec.build(), path)

def write_json():
    with files.atomic_outputs("metrics/m.json") as (path,):
        files.write_json(path, "x" * 10_000)

run_stage({write})
"""


@pytest.mark.parametrize("write, expected", [
    ("write_model", "error: cannot write a safetensors file ("),
    ("write_json", "error: File too large\n"),
])
def test_a_full_disk_is_one_line_and_exit_1_and_leaves_nothing(tmp_path, write, expected):
    code = FULL_DISK.format(write=write)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=TIME_CAP, preexec_fn=limit_file_size)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


WRITES_AFTER = 3  # seconds after it is ready, the stage of the parent-death test writes out.txt
PARENT = """
import os, subprocess, sys, time
stage, shell, seconds = sys.argv[1:4]
command = [sys.executable, stage, "out.txt", seconds]
stage = subprocess.Popen([shell, "-c", " ".join(command)] if shell else command)
print(stage.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("nohup", [[], ["nohup"]], ids=["", "under_nohup"])
@pytest.mark.parametrize("shell", ["", "/bin/dash"], ids=["direct", "through_dash"])
def test_a_stage_exits_when_the_process_that_started_it_dies(tmp_path, tmp_path_factory, shell, nohup):
    """As `kill -9 <dvc pid>` during `dvc repro`: the stage must not go on to write outputs dvc.lock never records.

    dvc runs a stage as ``$SHELL -c <cmd>``: bash replaces itself with the command, dash stays in between. Under
    `nohup dvc repro` dvc and its stages all ignore SIGHUP: still not a stage the user detached.
    """
    stage_script = tmp_path_factory.mktemp("stage") / "stage.py"
    stage_script.write_text(STAGE)
    parent = subprocess.Popen([*nohup, sys.executable, "-c", PARENT, str(stage_script), shell, str(WRITES_AFTER)],
                              cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL if nohup else None)
    started = int(read_line(parent.stdout))
    try:
        assert read_line(parent.stdout) == "ready\n"  # the stage shares its parent's stdout
        writes_at = time.monotonic() + WRITES_AFTER  # when the stage, had it lived on, would write out.txt
        pids = [started, *children(started)]
        stages = [pid for pid in pids if Path(f"/proc/{pid}/comm").read_text().startswith("python")]
        assert len(stages) == 1 and (stages[0] != started) == bool(shell)  # dash did not exec the stage
        parent.kill()
        parent.wait(timeout=TIME_CAP)
        deadline = writes_at - 1  # well before the stage would write out.txt
        while is_running(stages[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_running(stages[0])
    finally:
        for pid in [started, *children(started)]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
    time.sleep(max(0.0, writes_at + 0.5 - time.monotonic()))  # past the moment it would have written out.txt
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def read_line(stream):
    """The next line of ``stream``; fails the test after TIME_CAP seconds without one (a stage that never started)."""
    assert select.select([stream], [], [], TIME_CAP)[0], "no output within the time cap"
    return stream.readline()


def children(pid):
    """The child processes of ``pid``."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def is_running(pid):
    """Whether process ``pid`` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


DETACHER = """
import subprocess, sys
stage = subprocess.Popen([*sys.argv[2:], sys.executable, sys.argv[1], "out.txt", "3"], stdout=subprocess.PIPE,
                         text=True)
print(stage.pid, flush=True)
print(stage.stdout.readline(), end="", flush=True)  # the stage's "ready": its watchdog is set up, or not
"""


@pytest.mark.slow
@pytest.mark.parametrize("detach", [["nohup"], ["setsid"], ["nohup", "/bin/dash", "-c", '"$0" "$@"']],
                         ids=["nohup", "setsid", "nohup_dash"])
def test_a_stage_detached_from_its_shell_outlives_it(tmp_path, tmp_path_factory, detach):
    """As `nohup bash -c "python stages/train.py …" &` (or setsid), then the shell exits: the stage goes on."""
    stage_script = tmp_path_factory.mktemp("stage") / "stage.py"
    stage_script.write_text(STAGE)
    shell = subprocess.run([sys.executable, "-c", DETACHER, str(stage_script), *detach], cwd=tmp_path,
                           capture_output=True, text=True, timeout=TIME_CAP)
    pid, ready = shell.stdout.splitlines()
    assert ready == "ready", shell.stderr  # and the shell that started it has exited
    deadline = time.monotonic() + TIME_CAP
    while is_running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "out.txt").read_text() == "done\n"




# ---- SIGTERM and SIGINT, once or more, at any moment -------------------------------------------------------------

SIGNALLED = """
import shutil, sys, threading, time
from pathlib import Path
from mnist_dnn.stage import files
from mnist_dnn.stage.runtime import run_stage

def work():  # say ready, then work for a minute in short steps, as a stage does: a signal that lands just before a
    # sleep begins does not cut it short, and Python runs its handler when the sleep ends
    print("ready", flush=True)
    for _ in range(600):
        time.sleep(0.1)

def main(moment, linger):
    if linger:  # as a library's worker thread: Python joins it at exit, so the signals land in the shutdown
        threading.Thread(target=time.sleep, args=(float(linger),)).start()
    if moment == "cleanup":  # removing the staging folders takes a while: the signals land in it
        rmtree = shutil.rmtree
        shutil.rmtree = lambda path, **kwargs: (print("ready", flush=True), time.sleep(0.05), rmtree(path, **kwargs))
    if moment == "setup":
        work()
    for n in range(1, 1000 if moment == "churn" else 2):
        with files.atomic_outputs("out/model.txt", "out/log") as (model, log):
            if moment == "work":
                work()
            model.write_text(f"{n}\\n")
            log.mkdir()
            (log / "curve.tsv").write_text(f"{n}\\n")
        if moment == "churn" and n == 1:
            print("ready", flush=True)

run_stage(main, sys.argv[1], sys.argv[2])
if sys.argv[1] == "after":  # main has returned, and so has run_stage
    print("ready", flush=True)
"""
LINE = {signal.SIGINT: "error: interrupted\n", signal.SIGTERM: "error: terminated (SIGTERM)\n"}
TERM, INT = signal.SIGTERM, signal.SIGINT


def signalled_stage(cwd, moment, linger=0, env=None):
    """The stage above, in a process group of its own, once it says ``ready``: it has reached ``moment``."""
    stage = subprocess.Popen([sys.executable, "-c", SIGNALLED, moment, str(linger)], cwd=cwd, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        assert read_line(stage.stdout) == "ready\n"
    except BaseException:
        stage.kill()
        stage.communicate(timeout=TIME_CAP)
        raise
    return stage


def send(stage, signum):
    """Send ``signum`` to the stage's process group, as `timeout`, `docker stop` or Ctrl-C do; return once the kernel
    has delivered it (it is no longer pending), so that the next signal is the second one to arrive."""
    os.killpg(stage.pid, signum)
    deadline = time.monotonic() + TIME_CAP
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{stage.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        pending = int(next(line.split()[1] for line in status.splitlines() if line.startswith("ShdPnd:")), 16)
        if not pending & (1 << (signum - 1)):
            return
        time.sleep(0.0005)


def finish(stage):
    """The stage's exit status and stderr; killed if it has not exited within the time cap."""
    try:
        _, err = stage.communicate(timeout=TIME_CAP)
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)
            stage.communicate()
    return stage.returncode, err


def check_outputs(cwd, published):
    """No staging folder is left, and the two outputs are both there, from the same write, or (unless ``published``)
    neither is."""
    assert [p.name for p in cwd.rglob("*.tmp")] == []
    model, curve = cwd / "out/model.txt", cwd / "out/log/curve.tsv"
    if published or model.exists() or (cwd / "out/log").exists():
        assert model.read_text() == curve.read_text()
        assert sorted(p.name for p in (cwd / "out").iterdir()) == ["log", "model.txt"]


SIGNALS = [[TERM], [TERM, TERM], [INT], [INT, INT], [TERM, INT], [INT, TERM]]


@pytest.mark.parametrize("signals", SIGNALS, ids=lambda s: "+".join(signal.Signals(n).name[3:] for n in s))
@pytest.mark.parametrize("moment", ["setup", "work", "cleanup", "churn"])
def test_signals_stop_a_stage_in_one_line_and_leave_no_staging_folder(tmp_path, moment, signals):
    """SIGTERM (`timeout`, `docker stop`, systemd, a cancelled CI job, then the parent-death signal once dvc has died)
    or SIGINT, once or several in quick succession: before the outputs are made, while they are written, while the
    staging folders are removed, or anywhere in a loop of writes (a different moment each run). Five times each."""
    for run in range(5):
        cwd = tmp_path / str(run)
        cwd.mkdir()
        stage = signalled_stage(cwd, moment)
        if moment == "churn":
            time.sleep(run * 0.003)  # a different moment of the loop each run
        for signum in signals:
            send(stage, signum)
        status, err = finish(stage)
        assert (status, err) == (128 + signals[0], LINE[signals[0]])
        check_outputs(cwd, published=moment == "cleanup")


@pytest.mark.parametrize("signals", [[TERM, TERM], [TERM, INT], [INT, TERM]],
                         ids=lambda s: "+".join(signal.Signals(n).name[3:] for n in s))
def test_a_second_signal_while_the_stopped_stage_exits_changes_nothing(tmp_path, signals):
    """The second signal comes once the stage has said why it stops, while Python waits for a thread at exit."""
    for run in range(5):
        cwd = tmp_path / str(run)
        cwd.mkdir()
        stage = signalled_stage(cwd, "work", linger=0.15)
        send(stage, signals[0])
        assert read_line(stage.stderr) == LINE[signals[0]]
        send(stage, signals[1])
        status, err = finish(stage)
        assert (status, err) == (128 + signals[0], "")
        check_outputs(cwd, published=False)


@pytest.mark.parametrize("signals", [[TERM], [INT], [TERM, INT]], ids=["TERM", "INT", "TERM+INT"])
def test_a_signal_once_main_has_returned_is_ignored(tmp_path, signals):
    """The outputs are in place and the stage is only exiting (waiting for a thread): it exits 0, and says nothing."""
    for run in range(5):
        cwd = tmp_path / str(run)
        cwd.mkdir()
        stage = signalled_stage(cwd, "after", linger=0.15)
        for signum in signals:
            send(stage, signum)
        assert finish(stage) == (0, "")
        check_outputs(cwd, published=True)


@pytest.mark.parametrize("signum", [TERM, INT], ids=["TERM", "INT"])
def test_an_interrupted_dvc_stage_says_how_to_get_its_outputs_back(tmp_path, signum):
    """DVC removed the stage's outputs before it ran it (DVC_STAGE is set for a stage's command); `mnist-dnn predict`
    and a stage run by hand, where nothing was removed, say only the first part (the tests above)."""
    stage = signalled_stage(tmp_path, "work", env={**os.environ, "DVC_STAGE": "train@softmax"})
    send(stage, signum)
    status, err = finish(stage)
    assert status == 128 + signum
    assert err == (f"{LINE[signum][:-1]}; `dvc repro` finishes the run, or `dvc checkout` and "
                   "`git checkout -- metrics` bring back the last one\n")
