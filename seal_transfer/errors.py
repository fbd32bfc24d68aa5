"""One exception type for user mistakes, so every CLI can turn it into a one-line message and exit code 2."""

from __future__ import annotations

import re


class UserError(Exception):
    """A problem with the user's input (file, config key, argument): reported in one line, exit code 2.

    The message must name the source (file and line, or config key) and say what is wrong.
    """


def located(path: object, line: int | None, message: str) -> UserError:
    """Build a `UserError` that reads `path:line: message` (or `path: message` without a line)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return UserError(f"{where}: {message}")


_RAISED_AS = re.compile(r"[A-Za-z_][\w.]*: (.*)")


def one_line(exc: BaseException) -> str:
    """The message of a user error as the single line the CLI prints.

    A DataLoader worker's exception reaches the main process re-raised as the same type, but with the worker's
    whole traceback as its message ("Caught VideoError in DataLoader worker process 0. Original Traceback ...");
    its last line, `module.Type: message`, holds the original message, which is what the user needs.
    """
    text = str(exc)
    if "Original Traceback" in text and "\n" in text:
        last = text.rstrip().splitlines()[-1]
        match = _RAISED_AS.fullmatch(last)
        text = match.group(1) if match else last
    return " ".join(text.splitlines())
