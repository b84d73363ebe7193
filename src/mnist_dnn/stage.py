"""The stage runtime: every stage and `mnist-dnn` run through ``run_stage``, which turns each expected failure into one
line and an exit status, and exits when dvc, which started the stage, dies.

Exit statuses: 2 bad input (a UserError), 1 the environment (a file that cannot be written, a full disk, a closed
pipe), 130 interrupted (Ctrl-C); a stage whose parent (dvc) dies gets SIGTERM and exits with 143.
"""

import argparse
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
        sys.exit(128 + signal.SIGTERM)
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a usage error in one line (``error: <prog>: <message> (see --help)``) and exit 2."""

    def error(self, message):
        fail(f"{self.prog}: {message} (see --help)", BAD_INPUT)


def fail(message, status):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def run_stage(main, *args):
    """Call ``main(*args)``; report any expected failure as ``error: <message>`` on stderr and exit with its status.

    SIGTERM exits through Python (status 143), so that partial outputs are cleaned up on the way out. Text that the
    terminal's encoding lacks (``→`` on an ASCII terminal) is written as an escape, ``\\u2192``.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    exit_with_parent()
    try:
        main(*args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
    except UserError as err:
        fail(err, BAD_INPUT)
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
    except BrokenPipeError:
        # Python's recipe (library/signal.html#note-on-sigpipe): point stdout at devnull so the exit flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ENVIRONMENT)
    except OSError as err:
        reason = err.strerror or err
        fail(f"{err.filename}: {reason}" if err.filename else reason, ENVIRONMENT)
    except SafetensorError as err:  # loading turns these into UserErrors: what is left is a failed write
        fail(f"cannot write a safetensors file ({err})", ENVIRONMENT)
