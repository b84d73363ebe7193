"""User-facing errors: a problem with the user's input is a UserError, which ``stage.run_stage`` reports in one line
with exit status 2."""


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def one_line(text):
    """``str(text)`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())
