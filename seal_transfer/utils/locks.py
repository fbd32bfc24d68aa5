"""Exclusive locks on files that die with the process that took them, and only with it.

Why POSIX record locks (`fcntl.lockf`, i.e. F_SETLK) and not `flock`: an `flock` belongs to the open file
description, and a forked child (every DataLoader worker, every process-pool worker) shares its parent's
descriptions. After a `kill -9` of a stage its orphaned workers live on for a few seconds and keep the lock, so
a scheduler's immediate requeue was refused with "another run is writing this stage". A POSIX record lock
belongs to the process: a fork does not pass it on, and the kernel drops it the moment its owner dies, whatever
its children do. (Closing the fd in each worker would work only for the forks we control; PR_SET_PDEATHSIG
leaves a window between the owner's death and the workers' exit.)

Two properties of POSIX locks need care, and `process_lock` handles both: they do not exclude a second lock
from the same process (a registry of the paths this process holds refuses that), and closing *any* descriptor
of the file releases them (the file is opened once per lock, and never again while it is held).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator

_HELD: set[str] = set()  # lock files this process holds (POSIX locks do not exclude their own process)
_GUARD = threading.Lock()


class LockBusy(Exception):
    """Another process (or another part of this one) holds the lock."""


@contextlib.contextmanager
def process_lock(path: str | os.PathLike[str], *, wait: bool = False, note: str = "") -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block; `note` is written into the file.

    `wait=False` raises `LockBusy` at once when the lock is taken; `wait=True` blocks until it is free (another
    process) but still raises `LockBusy` when this process already holds it, which would otherwise deadlock.
    """
    key = os.path.realpath(path)
    with _GUARD:
        if key in _HELD:
            raise LockBusy(key)
        _HELD.add(key)
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise LockBusy(key) from None
                raise
            if note:
                os.ftruncate(fd, 0)
                os.pwrite(fd, note.encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock
    finally:
        with _GUARD:
            _HELD.discard(key)

