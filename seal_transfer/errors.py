"""One exception type for user mistakes, so every CLI can turn it into a one-line message and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, config key, argument): reported in one line, exit code 2.

    The message must name the source (file and line, or config key) and say what is wrong.
    """


def located(path: object, line: int | None, message: str) -> UserError:
    """Build a `UserError` that reads `path:line: message` (or `path: message` without a line)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return UserError(f"{where}: {message}")
