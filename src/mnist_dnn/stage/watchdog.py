"""A stage exits when dvc, which started it, dies: DVC does not pass its signals on to a stage."""

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh"}  # what dvc may run a stage's command through ($SHELL -c)


def exit_with_parent():
    """Exit through SIGTERM when the parent process dies.

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
    if _name(parent) in SHELLS and not _detached(parent, starter):
        threading.Thread(target=_exit_when_reparented, args=(parent, starter), daemon=True).start()


def _exit_when_reparented(shell, starter):
    """Send this process SIGTERM once ``shell`` no longer has ``starter`` as its parent: the starter has died."""
    while _parent_of(shell) == starter:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _detached(pid, parent):
    """Whether process ``pid`` was detached from its ``parent``: by ``nohup`` (it ignores SIGHUP, its parent does not)
    or ``setsid`` (a session of its own). Under ``nohup dvc repro`` both dvc and its stages ignore SIGHUP."""
    try:
        sessions = os.getsid(pid), os.getsid(parent)
    except (OSError, TypeError):  # the parent has died already (or was never known): that is not detaching
        return False
    return (_ignores_sighup(pid) and not _ignores_sighup(parent)) or sessions[0] != sessions[1]


def _name(pid):
    """The command name of process ``pid``; None once it has gone."""
    try:
        return psutil.Process(pid).name() if pid is not None else None
    except psutil.Error:
        return None


def _parent_of(pid):
    """The parent process of ``pid``; None once ``pid`` has gone."""
    try:
        return psutil.Process(pid).ppid() if pid is not None else None
    except psutil.Error:
        return None


def _ignores_sighup(pid):
    """Whether process ``pid`` ignores SIGHUP: bit 0 of SigIgn in /proc/<pid>/status, which psutil does not read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return bool(int(ignored, 16) & 1)
