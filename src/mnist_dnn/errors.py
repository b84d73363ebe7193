"""User-facing errors: a problem with the user's input is a UserError, which ``runtime.run_stage`` reports in one line
with exit status 2."""

import os


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def one_line(text):
    """``str(text)`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def environment_choice(name, choices, default):
    """``$name`` if it is one of ``choices``, ``default`` when it is unset or empty; else a UserError naming both."""
    value = os.environ.get(name) or default
    if value not in choices:
        raise UserError(f"{name}={value[:80]!r}: not one of {', '.join(choices)} (or unset)")
    return value
