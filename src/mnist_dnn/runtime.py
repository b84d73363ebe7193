"""The stage runtime: every stage and `mnist-dnn` run through ``run_stage``, which turns each expected failure into one
line and an exit status, and exits when dvc, which started the stage, dies.

Exit statuses: 2 bad input (a UserError), 1 the environment (a file that cannot be written, a full disk, a closed
pipe), 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM: `timeout`, `docker stop`, or dvc, the stage's
parent, dying). However many of these two signals come, and whenever, the first one stops the stage: one line, its
staging folders removed, no traceback; the others are ignored, and so is any that comes once main has returned.
"""

import argparse
import atexit
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

from safetensors import SafetensorError

from mnist_dnn.errors import UserError

BAD_INPUT, ENVIRONMENT, INTERRUPTED = 2, 1, 130
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh"}  # what dvc may run a stage's command through ($SHELL -c)


def exit_with_parent():
    """Exit through SIGTERM when dvc, which started this stage, dies: DVC does not pass its signals on to a stage.

    Linux sends SIGTERM when the parent dies (PR_SET_PDEATHSIG). dvc runs a stage as ``$SHELL -c <cmd>``; bash and
    zsh replace themselves with the command, but dash stays in between, so then a watchdog thread also follows the
    shell's parent. A process that the user detached from its parent (``nohup``, ``setsid``) is not followed.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    if _detached(os.getpid(), parent):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        signal.raise_signal(signal.SIGTERM)
    starter = _parent_of(parent)
    if _command_name(parent) in SHELLS and not _detached(parent, starter):
        threading.Thread(target=_exit_when_reparented, args=(parent, starter), daemon=True).start()


def _exit_when_reparented(shell, starter):
    """Send this process SIGTERM once ``shell`` no longer has ``starter`` as its parent: the starter has died."""
    while _parent_of(shell) == starter:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _detached(pid, parent):
    """Whether process ``pid`` was detached from its ``parent``: by ``nohup`` (it ignores SIGHUP, its parent does not)
    or ``setsid`` (a session of its own). Under ``nohup dvc repro`` both dvc and its stages ignore SIGHUP."""
    sessions = [_stat(p)[3:4] for p in (pid, parent)]
    if not sessions[1]:  # the parent has died already: that is not detaching
        return False
    ignores = [_ignores_sighup(p) for p in (pid, parent)]
    return (ignores[0] and not ignores[1]) or sessions[0] != sessions[1]


def _command_name(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, …); [] once it has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent_of(pid):
    """The parent process of ``pid``, from /proc; None once ``pid`` has gone."""
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _ignores_sighup(pid):
    """Whether process ``pid`` ignores SIGHUP (bit 0 of SigIgn in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return bool(int(ignored, 16) & 1)


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised once in the main thread; not an Exception, so that ``except Exception`` lets it by."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


SIGNALS = (signal.SIGINT, signal.SIGTERM)
# state: running (main), stopped (by a signal), done (main is, without one), returned (run_stage has, at "returned")
_signals = {"state": None, "held": 0, "pending": None, "before": {}, "returned": 0.0}


def _on_signal(signum, frame):
    """The first SIGINT or SIGTERM while main runs raises Interrupted (at the end of a held block); later ones, and
    any once main is done, do nothing. After run_stage, a caller that goes on (a test) gets its own handlers back."""
    if _signals["state"] == "running":
        _signals["state"] = "stopped"
        if _signals["held"] <= 0:
            raise Interrupted(signum)
        _signals["pending"] = signum
    elif _signals["state"] == "returned" and not _exiting():
        for other, handler in _signals["before"].items():
            signal.signal(other, handler)
        signal.raise_signal(signum)


def _exiting():
    """Whether the process is, as far as can be told, only exiting: run_stage returned under a second ago (a stage's
    script ends there), or Python's exit has stopped the main thread (to join the other threads, then atexit)."""
    return time.monotonic() < _signals["returned"] + 1 or not threading.main_thread().is_alive()


def _hold(change):
    _signals["held"] += change
    if _signals["held"] <= 0 and _signals["pending"]:
        signum, _signals["pending"] = _signals["pending"], None
        raise Interrupted(signum)


@contextlib.contextmanager
def signals_held(held=True):
    """Hold SIGINT and SIGTERM back until the block ends, where the first raises Interrupted; ``held=False`` lets them
    through again, within a held block. Not a signal mask: Linux then hands the signal to another thread."""
    change = 1 if held else -1
    _hold(change)
    try:
        yield
    finally:
        _hold(-change)


def _catch_signals():
    _signals.update(state="running", held=0, pending=None)
    for signum in SIGNALS:
        if signal.getsignal(signum) is not _on_signal:
            _signals["before"][signum] = signal.getsignal(signum)
            signal.signal(signum, _on_signal)


@atexit.register
def _ignore_signals():
    """At exit, ignore SIGINT and SIGTERM for good: else Python restores their default actions before it ends."""
    if signal.getsignal(signal.SIGTERM) is _on_signal:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def _interrupted(signum):
    """What an interrupted stage says; under DVC, which removed the stage's outputs before it ran it (DVC_STAGE is set
    for a stage's command), also how to get them back: `dvc checkout` restores only those in DVC's cache."""
    line = "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})"
    if "DVC_STAGE" in os.environ:
        line += ("; `dvc repro` finishes the run, or `dvc checkout` and `git checkout -- metrics` bring back the last"
                 " one")
    return line


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a usage error in one line (``error: <prog>: <message> (see --help)``) and exit 2."""

    def error(self, message):
        fail(f"{self.prog}: {message} (see --help)", BAD_INPUT)


def fail(message, status):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def run_stage(main, *args):
    """Call ``main(*args)``; report any expected failure as ``error: <message>`` on stderr and exit with its status.

    SIGINT and SIGTERM exit through Python (status 130, 143), so that partial outputs are cleaned up on the way out.
    Text that the terminal's encoding lacks (``→`` on an ASCII terminal) is written as an escape, ``\\u2192``.
    """
    try:
        try:
            _catch_signals()
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(errors="backslashreplace")
            exit_with_parent()
            main(*args)
            sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        finally:
            if _signals["state"] == "running":
                _signals["state"] = "done"  # from here on, a signal is ignored: the line below is written whole
    except Interrupted as stop:
        fail(_interrupted(stop.signum), 128 + stop.signum)
    except UserError as err:
        fail(err, BAD_INPUT)
    except KeyboardInterrupt:
        fail(_interrupted(signal.SIGINT), INTERRUPTED)
    except BrokenPipeError:
        # Python's recipe (library/signal.html#note-on-sigpipe): point stdout at devnull so the exit flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ENVIRONMENT)
    except OSError as err:
        reason = err.strerror or err
        fail(f"{err.filename}: {reason}" if err.filename else reason, ENVIRONMENT)
    except SafetensorError as err:  # loading turns these into UserErrors: what is left is a failed write
        fail(f"cannot write a safetensors file ({err})", ENVIRONMENT)
    finally:
        _signals.update(state="returned", returned=time.monotonic())
