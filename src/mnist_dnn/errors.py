"""User-facing errors and the wrapper that turns every expected failure of a stage into one line and an exit status.

Exit statuses: 2 bad input (a UserError), 1 the environment (a file that cannot be written, a full disk, a closed
pipe), 130 interrupted (Ctrl-C); a stage whose parent (dvc) dies gets SIGTERM and exits with 143.
"""

import ctypes
import inspect
import os
import signal
import sys

from safetensors import SafetensorError

BAD_INPUT, ENVIRONMENT, INTERRUPTED = 2, 1, 130
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def exit_with_parent():
    """Have Linux send SIGTERM when the parent process dies: DVC does not pass its signals on to a running stage."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(128 + signal.SIGTERM)


def fail(message, status):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def run_stage(main, *args):
    """Call ``main(*args)``; report any expected failure as ``error: <message>`` on stderr and exit with its status.

    SIGTERM exits through Python (status 143), so that partial outputs are cleaned up on the way out.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    exit_with_parent()
    try:
        inspect.signature(main).bind(*args)
    except TypeError as err:
        fail(f"{os.path.basename(sys.argv[0])}: {err}", BAD_INPUT)
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
