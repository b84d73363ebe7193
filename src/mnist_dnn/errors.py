"""User-facing errors and the wrapper that turns them into one line and a non-zero exit."""

import sys


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def run_stage(main, *args):
    """Call ``main(*args)``; on a UserError print ``error: <message>`` and exit with status 1."""
    try:
        main(*args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
