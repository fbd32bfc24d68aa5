"""Shared CLI plumbing: exit codes (0 ok, 2 user error, 1 internal error) and one-line user-error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from seal_transfer.errors import UserError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2


def guarded_main(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; a `UserError` becomes `error: <message>` on stderr and exit code 2, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_OK if code is None else int(code)
