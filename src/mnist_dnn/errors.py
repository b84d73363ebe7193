"""User-facing errors: a problem with the user's input is a UserError, which ``stage.runtime.run_stage`` reports in one
line with exit status 2; and the user's input quoted in such a line, however large (``quote``, ``describe``)."""

import os
import reprlib

QUOTE_LIMIT = 80  # characters of the user's input that an error message repeats
_repr = reprlib.Repr()  # repr that stops early however large or deep the value: a billion laughs quotes in a line
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 2, QUOTE_LIMIT, QUOTE_LIMIT, QUOTE_LIMIT


class UserError(Exception):
    """A problem with the user's input (params, data, files): reported in one line, no traceback."""


def missing_extra(err):
    """The extra of pyproject.toml that installs what the exception ``err`` says is missing (Ray; dvc-s3, whose lack
    DVC reports as an ImportError or a RemoteMissingDepsError), else None."""
    if isinstance(err, ImportError) and (err.name or "").split(".")[0] == "ray":
        return "ray"
    if isinstance(err, ImportError) or type(err).__name__ == "RemoteMissingDepsError":
        if "dvc-s3" in str(err) or getattr(err, "protocol", None) == "s3":
            return "s3"
    return None


def one_line(text):
    """``str(text)`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def printable(text):
    """``text`` with each character a terminal would act on (a newline, an escape) written as its escape: a path of
    the user's on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def shorten(text, limit=QUOTE_LIMIT):
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value):
    """``repr(value)`` in at most QUOTE_LIMIT characters, computed without ever building a longer one."""
    return shorten(_repr.repr(value))


def describe(err):
    """The first error of a pydantic ValidationError in one line: ``key: message (got <the input, quoted>)``."""
    first = err.errors()[0]
    loc = first["loc"]
    if "[key]" in loc:  # a bad name: the message quotes it, the key is the mapping that holds it
        loc = loc[: loc.index("[key]") - 1]
    key = shorten(".".join(str(part) for part in loc)) or "(top level)"
    message = shorten(first["msg"].removeprefix("Value error, "), 2 * QUOTE_LIMIT)
    got = "" if first["type"] in ("missing", "value_error") else f" (got {quote(first['input'])})"
    return f"{key}: {message}{got}"


def environment_choice(name, choices, default):
    """``$name`` if it is one of ``choices``, ``default`` when it is unset or empty; else a UserError naming both."""
    value = os.environ.get(name) or default
    if value not in choices:
        raise UserError(f"{name}={value[:80]!r}: not one of {', '.join(choices)} (or unset)")
    return value
