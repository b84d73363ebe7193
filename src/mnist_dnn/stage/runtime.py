"""Every stage and `mnist-dnn` run through ``run_stage``, which turns each expected failure into one line and an exit
status, and exits when dvc, which started the stage, dies (``watchdog``).

Exit statuses: 2 bad input (a UserError), 1 the environment (a file that cannot be written, a full disk, a closed
pipe), 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM: `timeout`, `docker stop`, or dvc, the stage's
parent, dying). However many of these two signals come, and whenever, the first one stops the stage: one line, its
staging folders removed, no traceback; the others are ignored, and so is any that comes once main has returned.
"""

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
import time

from safetensors import SafetensorError

from mnist_dnn.errors import UserError, missing_extra, printable
from mnist_dnn.stage.watchdog import exit_with_parent

BAD_INPUT, ENVIRONMENT, INTERRUPTED = 2, 1, 130


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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with each option's default, where it has one to show."""

    def _get_help_string(self, action):
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        return super()._get_help_string(action) if shown else action.help


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with a usage error in one line (``error: <prog>: <message> (see --help)``) and exit 2, and
    each option's default in its help."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=HelpFormatter, **kwargs)

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
        fail(f"{printable(err.filename)}: {reason}" if err.filename else reason, ENVIRONMENT)
    except SafetensorError as err:  # loading turns these into UserErrors: what is left is a failed write
        fail(f"cannot write a safetensors file ({err})", ENVIRONMENT)
    except Exception as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        fail(f"the {extra} extra is not installed: pip install 'mnist-dnn[{extra}]' (in a clone, `make install` "
             "installs every extra)", ENVIRONMENT)
    finally:
        _signals.update(state="returned", returned=time.monotonic())
