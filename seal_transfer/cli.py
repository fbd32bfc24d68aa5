"""Shared CLI plumbing: exit codes (0 ok, 2 user error, 1 internal error) and one-line user-error reporting."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Sequence

from seal_transfer.errors import UserError, one_line

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away (`| head`)


def guarded_main(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)`; a `UserError` becomes `error: <message>` on stderr and exit code 2, never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(args)
        sys.stdout.flush()  # output that fit the buffer meets a closed pipe here, not at interpreter exit
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a pipe of our own (a worker, a socket) broke: a bug, keep the traceback
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return EXIT_OK if code is None else int(code)


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe or socket whose reading end is closed (`... | head` after head exited)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file descriptor (captured output) or no poll()
        return False


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is still buffered cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def parse_stage_args(prog: str, argv: Sequence[str]) -> tuple[list[str], list[str], bool, bool]:
    """Split `[--config FILE]... [key=value]... [--print-config] [--help]` (argparse would reject `key=value`)."""
    files: list[str] = []
    overrides: list[str] = []
    show_help = print_config = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            show_help = True
        elif arg == "--print-config":
            print_config = True
        elif arg in ("-c", "--config"):
            if i + 1 >= len(argv):
                raise UserError(f"{prog}: {arg} needs a file name")
            files.append(argv[i + 1])
            i += 1
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
        elif arg.startswith("-"):
            raise UserError(
                f"{prog}: unknown option '{arg}' (options: --config FILE, --print-config, --help; "
                "config keys are given as key=value)"
            )
        else:
            overrides.append(arg)
        i += 1
    return files, overrides, show_help, print_config


def stage_main(
    prog: str,
    description: str,
    sections: Sequence[str] | None,
    run: Callable[[object], int | None],
    stage_defaults: dict | None = None,
    schema: type | None = None,
) -> Callable[[Sequence[str]], int | None]:
    """Build the `main(argv)` of a stage CLI that follows the project's conventions (see README, 'CLI').

    The config is loaded and checked once, here (`seal_transfer.config.load_config`: unknown keys, types and
    every section's `validate`), before `run` gets the typed config; `schema` defaults to the stage `Config`.
    """

    def main(argv: Sequence[str]) -> int | None:
        from seal_transfer.config.loader import describe_keys, load_config, to_yaml

        if schema is None:
            from seal_transfer.config.schema import Config

            use = Config
        else:
            use = schema
        files, overrides, show_help, print_config = parse_stage_args(prog, argv)
        if show_help:
            print(f"usage: python -m {prog} [--config FILE]... [key=value]... [--print-config]\n\n{description}\n")
            print("keys (default shown; later --config files and key=value overrides win):")
            print(describe_keys(use, sections))
            return EXIT_OK
        cfg = load_config(use, files, overrides, base=stage_defaults)
        if print_config:
            print(to_yaml(cfg), end="")
            return EXIT_OK
        return run(cfg)

    return main
