"""User-facing errors and the wrapper that turns them into one line and a non-zero exit."""

import signal
import sys


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def run_stage(main, *args, exit_code=1):
    """Call ``main(*args)``; on a UserError print ``error: <message>`` and exit with ``exit_code``.

    SIGTERM exits through Python (status 143), so that partial outputs are cleaned up on the way out.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        main(*args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(exit_code)
